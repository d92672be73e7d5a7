"""Bad input on the signup pages: clear messages for what a person can fix, a clear page for
everything else, and never a 500 (property-based, bounded)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.signup.schema import signups, tables
from services.signup.web import create_app
from shared.db import Database
from tests.support.enrollment import csrf_from, signup_settings

FAST = settings(
    max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None
)
ALLOWED = {200, 303, 400, 403, 404, 409, 410, 422, 429}


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'signup.sqlite'}")
    tables.metadata.create_all(database.engine)
    yield database
    database.dispose()


@pytest.fixture
def app(db: Database) -> FastAPI:
    return create_app(db, signup_settings(registrations_per_ip=10_000), solusvm=None)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as test_client:
        yield test_client


def form(client: TestClient, **fields: str) -> dict[str, str]:
    return {"csrf_token": csrf_from(client.get("/signup").text), **fields}


def test_each_bad_field_gets_its_message_and_the_form_keeps_what_was_typed(client: TestClient, db: Database) -> None:
    secret = "weak"
    response = client.post("/signup", data=form(client, name="", company="Acme", email="ada@", password=secret))
    assert response.status_code == 422
    for message in ("Please enter your name.", "Please enter a valid email address", "at least 10 characters"):
        assert message in response.text
    assert 'value="Acme"' in response.text and 'value="ada@"' in response.text
    assert f'value="{secret}"' not in response.text, "a password is never echoed back"
    assert 'aria-invalid="true"' in response.text and 'role="alert"' in response.text
    with db.transaction() as session:
        assert session.execute(signups.select()).first() is None


def test_over_long_input_is_named_not_stored(client: TestClient) -> None:
    response = client.post(
        "/signup", data=form(client, name="N" * 5000, email="a@example.com", password="Tr0ub4dor&3-horse")
    )
    assert response.status_code == 422 and "at most 100 characters" in response.text


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"\xff\xfe\x00garbage", "application/x-www-form-urlencoded"),
        (b"name=%ZZ&email=%", "application/x-www-form-urlencoded"),
        (
            b'--x\r\nContent-Disposition: form-data; name="f"; filename="a.txt"\r\n\r\nhi\r\n--x--\r\n',
            "multipart/form-data; boundary=x",
        ),
        (b"--broken", "multipart/form-data; boundary=x"),
        (b'{"name": "A"}', "application/json"),
        (b"name=" + b"x" * 2_000_000, "application/x-www-form-urlencoded"),
        (b"", "text/plain"),
    ],
)
def test_malformed_form_bodies_get_a_page_not_a_500(client: TestClient, content: bytes, content_type: str) -> None:
    expected = (413,) if len(content) > 65_536 else (400, 403)  # an over-large body is refused unread
    for path in ("/signup", "/signup/resend", "/signup/terms", "/sso"):
        response = client.post(path, content=content, headers={"Content-Type": content_type})
        assert response.status_code in expected, (path, response.status_code)


@FAST
@given(
    fields=st.dictionaries(
        st.sampled_from(["name", "company", "email", "password", "csrf_token", "other"]),
        st.text(max_size=300),
        max_size=6,
    )
)
def test_any_registration_form_gets_a_page_not_a_500(client: TestClient, fields: dict[str, str]) -> None:
    fields = {key: value.replace("\x00", "") for key, value in fields.items()}
    with_token = (
        {**fields, "csrf_token": csrf_from(client.get("/signup").text)} if "csrf_token" not in fields else fields
    )
    response = client.post("/signup", data=with_token)
    assert response.status_code in ALLOWED, response.status_code


@FAST
@given(token=st.text(min_size=1, max_size=700))
def test_any_link_gets_a_page_not_a_500(client: TestClient, token: str) -> None:
    for prefix in ("/verify/", "/sso/"):
        response = client.get(prefix + quote(token, safe=""))
        assert response.status_code in ALLOWED | {302}, (prefix, token, response.status_code)
    confirmed = client.post("/verify/" + quote(token, safe=""), data=form(client))
    assert confirmed.status_code in ALLOWED, (token, confirmed.status_code)


@pytest.mark.parametrize("cookie", ["", "x", "a.b", "%C3%A9.%C3%A9", "A" * 5000, "..", "a.b.c", '"quoted"'])
def test_a_forged_session_cookie_is_ignored(client: TestClient, cookie: str) -> None:
    client.cookies.set("postpay_session", cookie)
    client.cookies.set("postpay_csrf", cookie)
    for path in ("/signup/status", "/signup/terms", "/signup/check-email", "/"):
        assert client.get(path).status_code in (200, 403), path
    assert client.post("/sso", data={"csrf_token": "x"}).status_code == 403


def test_the_landing_page_explains_post_pay_and_prices(client: TestClient) -> None:
    page = client.get("/").text
    assert "billed after use" in page and 'href="/signup"' in page
    assert '<td>USD</td><td class="num">0.0010</td>' in page and '<td>EUR</td><td class="num">0.0009</td>' in page
    assert (
        "Invoices and payment" in page and "due 14 days after" in page and "unpaid 14 days after its due date" in page
    )


def test_unknown_pages_are_a_friendly_404(client: TestClient) -> None:
    response = client.get("/no/such/page")
    assert response.status_code == 404 and "Page not found" in response.text
