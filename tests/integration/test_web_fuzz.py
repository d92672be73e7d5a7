"""Fuzzed form posts to every form of the signup web (the confirm button of any verification link
included), from browsers at every step of the journey (anonymous, registered, verified, enrolled),
with a valid CSRF token (so the fuzz reaches the handlers) and without: never a 5xx, always one of the
pages the web means to show.

The registration form alone, and links, are fuzzed in test_signup_bad_input.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote, urlencode

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.bus.memory import InMemoryBus
from shared.db import Database
from tests.support.enrollment import Enrollment, clean_upstreams, csrf_from, signup_settings, unique_email, upstreams  # noqa: F401 - fixtures used by name
from tests.support.system import Upstreams

FUZZ = settings(
    max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None
)
ALLOWED = {200, 303, 400, 403, 404, 409, 410, 422, 429}
FORMS = ("/signup", "/signup/resend", "/signup/terms", "/sso")
STAGES = ("anonymous", "registered", "verified", "enrolled")
FIELD_NAMES = [
    "csrf_token",
    "email",
    "name",
    "company",
    "password",
    "accept_terms_of_service",
    "accept_postpay_terms",
    "accept_",
    "accept_x" * 30,
    "",
    "\u00e9",
    "a[]",
    "csrf_token[]",
]
TEXT = st.one_of(st.text(max_size=200), st.sampled_from(["", " ", "yes", "on", "\u0000", "a@b.co", "x" * 5000]))


@pytest.fixture(scope="module")
def browsers(upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, TestClient]]:
    """One browser at each step of the journey (module-wide: hypothesis examples share them)."""
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'signup.sqlite'}")
    settings = signup_settings(registrations_per_ip=100_000, resends_per_ip=100_000, resends_per_email=100_000)
    with Enrollment(upstreams, InMemoryBus(retry_delays=[0.2]), db, settings=settings).start() as enrollment:
        made = {
            stage: TestClient(enrollment.app, base_url=settings.public_url, follow_redirects=False) for stage in STAGES
        }
        made["anonymous"].get("/signup")
        registered = unique_email("fuzz")
        assert enrollment.register(registered, client=made["registered"]).status_code == 303
        verified = unique_email("fuzz")
        enrollment.register(verified, client=made["verified"])
        (link,) = enrollment.verification_links(verified)
        assert enrollment.open_link(link, made["verified"]).status_code == 303
        enrollment.enroll(unique_email("fuzz"), client=made["enrolled"])
        yield made
        for browser in made.values():
            browser.close()
    db.dispose()


def token_of(browser: TestClient) -> str:
    return csrf_from(browser.get("/signup").text)


@FUZZ
@given(
    stage=st.sampled_from(STAGES),
    path=st.sampled_from(FORMS),
    with_token=st.booleans(),
    fields=st.lists(st.tuples(st.sampled_from(FIELD_NAMES) | st.text(max_size=20), TEXT), max_size=8),
)
def test_any_form_post_from_any_step_gets_a_page_not_a_500(
    browsers: dict[str, TestClient], stage: str, path: str, with_token: bool, fields: list[tuple[str, str]]
) -> None:
    browser = browsers[stage]
    data = [(name.replace("\x00", ""), value.replace("\x00", "")) for name, value in fields]
    if with_token:
        data.insert(0, ("csrf_token", token_of(browser)))
    # Encoded by hand: repeated names are allowed, as a browser (or an attacker) may send them.
    response = browser.post(
        path, content=urlencode(data).encode(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code in ALLOWED, (stage, path, data, response.status_code, response.text[:300])


@FUZZ
@given(
    stage=st.sampled_from(STAGES),
    path=st.sampled_from(FORMS),
    body=st.binary(max_size=2000),
    content_type=st.sampled_from(
        [
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=xyz",
            "multipart/form-data",
            "application/json",
            "text/plain",
            "",
            "*/*;;;",
        ]
    ),
)
def test_any_raw_body_to_any_form_gets_a_page_not_a_500(
    browsers: dict[str, TestClient], stage: str, path: str, body: bytes, content_type: str
) -> None:
    response = browsers[stage].post(path, content=body, headers={"Content-Type": content_type})
    assert response.status_code in ALLOWED, (stage, path, body[:100], content_type, response.status_code)


@FUZZ
@given(
    stage=st.sampled_from(STAGES),
    path=st.sampled_from(["/", "/signup", "/signup/check-email", "/signup/terms", "/signup/status"]),
    query=st.dictionaries(st.text(max_size=20), st.text(max_size=100), max_size=4),
)
def test_any_query_on_any_page_gets_a_page_not_a_500(
    browsers: dict[str, TestClient], stage: str, path: str, query: dict[str, str]
) -> None:
    response = browsers[stage].get(path, params=query)
    assert response.status_code in ALLOWED | {302}, (stage, path, query, response.status_code)


@FUZZ
@given(
    stage=st.sampled_from(STAGES),
    token=st.text(min_size=1, max_size=600),
    with_token=st.booleans(),
    fields=st.dictionaries(st.sampled_from(FIELD_NAMES), TEXT, max_size=4),
)
def test_pressing_confirm_on_any_verification_link_gets_a_page_not_a_500(
    browsers: dict[str, TestClient], stage: str, token: str, with_token: bool, fields: dict[str, str]
) -> None:
    browser = browsers[stage]
    data = [(name, value.replace("\x00", "")) for name, value in fields.items()]
    if with_token:
        data.insert(0, ("csrf_token", token_of(browser)))
    response = browser.post(
        "/verify/" + quote(token, safe=""),
        content=urlencode(data).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code in ALLOWED, (stage, token, response.status_code)
