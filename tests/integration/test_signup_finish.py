"""A customer who confirmed their email but never accepted the terms finishes from the client area.

The client-area panel says "Finish signing up"; its button (the WHMCS action, for the client's owner)
asks postpay, signed, for a single-use link valid at most a minute, which opens the terms in whatever
browser the customer is in. What an attacker would try: the request unsigned, signed for another
purpose, or replayed; the link twice, late, for an enrolled client, or as another kind of link.
"""

from __future__ import annotations

import pytest

from shared.clock import ManualClock
from tests.support.enrollment import (  # noqa: F401 - fixtures
    Enrollment,
    clean_upstreams,
    clock,
    csrf_from,
    enrollment,
    panel_headers,
    path_of,
    unique_email,
    upstreams,
)


def finish_link(enrollment: Enrollment, client_id: int) -> tuple[int, dict]:
    answer = enrollment.client.post(
        f"/api/v1/panel/{client_id}/finish", headers=panel_headers(client_id, "finish", clock=enrollment.deps.clock)
    )
    return answer.status_code, answer.json()


@pytest.fixture
def unfinished(enrollment: Enrollment) -> int:
    email = unique_email("unfinished")
    assert enrollment.register(email).status_code == 303
    (link,) = enrollment.verification_links(email)
    assert enrollment.open_link(link).status_code == 303
    enrollment.wait_for_terms()
    signup = enrollment.signup_row(email)
    assert signup is not None and signup.whmcs_client_id is not None
    enrollment.client.cookies.clear()  # the customer closed that browser
    return signup.whmcs_client_id


def test_the_panel_of_a_verified_customer_says_finish_signing_up_not_enrolled(
    enrollment: Enrollment, unfinished: int
) -> None:
    panel = enrollment.client.get(
        f"/api/v1/panel/{unfinished}", headers=panel_headers(unfinished, "panel", clock=enrollment.deps.clock)
    ).json()
    assert (panel["state"], panel["enrolled"], panel["title"]) == ("awaiting_terms", False, "Finish signing up")
    assert "solusvm2_finish_signup.php" in panel["html"] and "Finish signing up" in panel["html"]
    assert "Learn more and sign up" not in panel["html"]


def test_the_finish_link_opens_the_terms_in_a_new_browser_and_the_customer_enrols(
    enrollment: Enrollment, unfinished: int
) -> None:
    status, body = finish_link(enrollment, unfinished)
    assert status == 200 and 0 < body["expires_in_seconds"] <= 60
    browser = enrollment.browser()
    opened = browser.get(path_of(body["url"]))
    assert (opened.status_code, opened.headers["location"]) == (303, "/signup/terms")
    terms = browser.get("/signup/terms")
    assert 'type="checkbox"' in terms.text
    accepted = browser.post(
        "/signup/terms",
        data={"csrf_token": csrf_from(terms.text), "accept_terms_of_service": "yes", "accept_postpay_terms": "yes"},
    )
    assert accepted.status_code == 303
    enrollment.wait_enrolled(browser)


def test_a_finish_link_works_once_and_not_after_its_minute(
    enrollment: Enrollment, unfinished: int, clock: ManualClock
) -> None:
    _, first = finish_link(enrollment, unfinished)
    assert enrollment.browser().get(path_of(first["url"])).status_code == 303
    again = enrollment.browser()
    reused = again.get(path_of(first["url"]))
    assert reused.status_code == 409 and "postpay_session" not in reused.headers.get("set-cookie", "")
    assert again.get("/signup/terms").status_code == 403

    _, late = finish_link(enrollment, unfinished)
    clock.advance(seconds=61)
    expired = enrollment.browser().get(path_of(late["url"]))
    assert expired.status_code == 410 and "postpay_session" not in expired.headers.get("set-cookie", "")


def test_no_finish_link_without_a_fresh_signature_for_that_purpose(enrollment: Enrollment, unfinished: int) -> None:
    path = f"/api/v1/panel/{unfinished}/finish"
    assert enrollment.client.post(path).status_code == 401
    for purpose in ("panel", "sso"):  # a captured panel or login request cannot mint it
        headers = panel_headers(unfinished, purpose, clock=enrollment.deps.clock)
        assert enrollment.client.post(path, headers=headers).status_code == 401
    headers = panel_headers(unfinished, "finish", clock=enrollment.deps.clock)
    assert enrollment.client.post(path, headers=headers).status_code == 200
    assert enrollment.client.post(path, headers=headers).status_code == 401  # replayed
    other = panel_headers(unfinished + 1, "finish", clock=enrollment.deps.clock)
    assert enrollment.client.post(path, headers=other).status_code == 401  # signed for another client


def test_no_finish_link_for_an_enrolled_or_unknown_client(enrollment: Enrollment) -> None:
    email = unique_email("done")
    enrollment.enroll(email)
    signup = enrollment.signup_row(email)
    assert signup is not None and signup.whmcs_client_id is not None
    assert finish_link(enrollment, signup.whmcs_client_id)[0] == 404
    assert finish_link(enrollment, 987_654)[0] == 404


def test_a_finish_link_is_no_other_kind_of_link_and_no_other_link_is_one(
    enrollment: Enrollment, unfinished: int
) -> None:
    _, body = finish_link(enrollment, unfinished)
    token = path_of(body["url"]).rsplit("/", 1)[1]
    assert enrollment.browser().get(f"/sso/{token}").status_code == 400
    assert enrollment.browser().get(f"/verify/{token}").status_code == 400
    assert enrollment.browser().get(f"/finish/{token[:-2]}xy").status_code == 400
    email = unique_email("other")
    enrollment.register(email)
    (verification,) = enrollment.verification_links(email)
    assert enrollment.browser().get("/finish/" + path_of(verification).rsplit("/", 1)[1]).status_code == 400
