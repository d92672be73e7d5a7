"""Single sign-on into SolusVM 2 and the WHMCS client-area panel: links live a minute, work once,
only for their customer (and, on the web, only in the session that asked), and the panel endpoints
answer only the WHMCS hook."""

from __future__ import annotations

import time

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from services.signup import schema
from services.signup.accounts import accounts
from shared.clock import ManualClock
from simulators.faults import FaultRule
from tests.support.enrollment import (  # noqa: F401 - fixtures used by name
    TEST_PANEL_SECRET,
    Enrollment,
    clean_upstreams,
    clock,
    csrf_from,
    enrollment,
    panel_headers,
    unique_email,
    upstreams,
)
from tests.support.system import Upstreams


@pytest.fixture
def enrolled(enrollment: Enrollment) -> tuple[str, object]:
    email = unique_email()
    return email, enrollment.enroll(email)


def mint(enrollment: Enrollment, enrolled_page: object, client: TestClient | None = None) -> str:
    client = client or enrollment.client
    response = client.post("/sso", data={"csrf_token": csrf_from(enrolled_page.text)})  # type: ignore[attr-defined]
    assert response.status_code == 303
    return str(response.headers["location"])


def test_a_login_link_lives_at_most_a_minute_and_leads_into_solusvm(
    enrollment: Enrollment, enrolled: tuple[str, object], upstreams: Upstreams
) -> None:
    email, page = enrolled
    path = mint(enrollment, page)
    with enrollment.db.transaction() as session:
        (link,) = session.execute(select(schema.links).where(schema.links.c.purpose == "sso")).all()
    assert 0 < (link.expires_at - link.created_at).total_seconds() <= 60
    redirect = enrollment.client.get(path)
    assert redirect.status_code == 302
    landed = httpx.get(redirect.headers["location"])
    assert landed.status_code == 200 and email in landed.text


def test_a_used_login_link_gets_a_clear_page_and_no_new_token(
    enrollment: Enrollment, enrolled: tuple[str, object], upstreams: Upstreams
) -> None:
    path = mint(enrollment, enrolled[1])
    assert enrollment.client.get(path).status_code == 302
    issued = len(upstreams.solusvm_state.tokens)
    again = enrollment.client.get(path)
    assert again.status_code == 409 and "already been used" in again.text
    assert len(upstreams.solusvm_state.tokens) == issued


def test_an_expired_login_link_gets_a_clear_page(
    enrollment: Enrollment, enrolled: tuple[str, object], clock: ManualClock, upstreams: Upstreams
) -> None:
    path = mint(enrollment, enrolled[1])
    clock.advance(seconds=60)
    issued = len(upstreams.solusvm_state.tokens)
    expired = enrollment.client.get(path)
    assert expired.status_code == 410 and "expired" in expired.text
    assert len(upstreams.solusvm_state.tokens) == issued


def test_a_locked_customers_login_link_says_so_and_asks_solusvm_for_nothing(
    enrollment: Enrollment, enrolled: tuple[str, object], clock: ManualClock, upstreams: Upstreams
) -> None:
    email, page = enrolled
    path = mint(enrollment, page)
    with enrollment.db.transaction() as session:
        client_id = session.execute(
            select(schema.signups.c.whmcs_client_id).where(schema.signups.c.email == email)
        ).scalar_one()
        session.execute(
            insert(accounts).values(
                whmcs_client_id=client_id, status="locked", overdue_invoice_ids="[]", revision=1, updated_at=clock()
            )
        )
    issued = len(upstreams.solusvm_state.tokens)
    refused = enrollment.client.get(path)
    assert refused.status_code == 403 and "account is locked" in refused.text
    assert "again for a fresh link" not in refused.text
    assert len(upstreams.solusvm_state.tokens) == issued


def test_someone_elses_login_link_does_not_work_and_stays_usable_by_its_owner(
    enrollment: Enrollment, enrolled: tuple[str, object]
) -> None:
    path = mint(enrollment, enrolled[1])
    with TestClient(enrollment.app, base_url=enrollment.settings.public_url, follow_redirects=False) as stranger:
        refused = stranger.get(path)
        assert refused.status_code == 403 and "belongs to someone else" in refused.text
    assert enrollment.client.get(path).status_code == 302


def test_a_login_link_from_another_session_of_the_same_customer_does_not_work(enrollment: Enrollment) -> None:
    """Two browsers that each confirmed a verification link: only the one that accepted the terms may
    log in from here, and a login link it minted does not work in the other."""
    email = unique_email()
    enrollment.register(email)
    (first_link,) = enrollment.verification_links(email)
    assert enrollment.open_link(first_link).status_code == 303
    enrollment.wait_for_terms()
    with TestClient(enrollment.app, base_url=enrollment.settings.public_url, follow_redirects=False) as second:
        assert enrollment.resend(email, second).status_code == 200
        _, second_link = enrollment.verification_links(email, count=2)
        assert enrollment.open_link(second_link, second).status_code == 303
        enrollment.accept_terms()
        page = enrollment.wait_enrolled()
        enrollment.wait_enrolled(second)
        path = mint(enrollment, page)
        refused = second.get(path)
        assert refused.status_code == 403 and "belongs to someone else" in refused.text
        assert second.post("/sso", data={"csrf_token": csrf_from(second.get("/signup").text)}).status_code == 403
    assert enrollment.client.get(path).status_code == 302


@pytest.mark.parametrize("path", ["/sso/abc", "/sso/" + "A" * 600, "/sso/a.b", "/sso/%00", "/sso/%C3%A9.%C3%A9"])
def test_a_tampered_login_link_gets_a_clear_page(
    enrollment: Enrollment, enrolled: tuple[str, object], path: str
) -> None:
    response = enrollment.client.get(path)
    assert response.status_code in (400, 404) and response.status_code != 500


def test_solusvm_down_at_login_gets_a_clear_page(
    enrollment: Enrollment, enrolled: tuple[str, object], upstreams: Upstreams
) -> None:
    upstreams.solusvm_faults.add(FaultRule(kind="server_error", route="POST /api/v1/users/*/tokens", count=1))
    response = enrollment.client.get(mint(enrollment, enrolled[1]))
    assert response.status_code == 503 and "not answering" in response.text
    assert enrollment.client.get(mint(enrollment, enrolled[1])).status_code == 302, "the next press works"


# The WHMCS panel -------------------------------------------------------------------------------------


def signed(client_id: int, purpose: str, *, secret: str = TEST_PANEL_SECRET, at: float | None = None) -> dict[str, str]:
    return panel_headers(client_id, purpose, secret=secret, at=at)


def client_id_of(enrollment: Enrollment, email: str) -> int:
    signup = enrollment.signup_row(email)
    assert signup is not None and signup.whmcs_client_id is not None
    return signup.whmcs_client_id


def test_the_panel_says_not_enrolled_with_a_way_to_sign_up(enrollment: Enrollment) -> None:
    response = enrollment.client.get("/api/v1/panel/999", headers=signed(999, "panel"))
    assert response.status_code == 200
    body = response.json()
    assert (body["enrolled"], body["title"]) == (False, "Not enrolled in SolusVM 2")
    assert f'href="{enrollment.settings.public_url}/"' in body["html"]


def test_the_panel_says_enrolled_with_the_login_button(enrollment: Enrollment, enrolled: tuple[str, object]) -> None:
    client_id = client_id_of(enrollment, enrolled[0])
    body = enrollment.client.get(f"/api/v1/panel/{client_id}", headers=signed(client_id, "panel")).json()
    assert (body["enrolled"], body["title"]) == (True, "Enrolled in SolusVM 2")
    assert 'href="solusvm2_sso.php"' in body["html"] and "Log in to SolusVM 2" in body["html"]
    html = enrollment.client.get(
        f"/api/v1/panel/{client_id}", headers={**signed(client_id, "panel"), "Accept": "text/html"}
    )
    assert html.headers["content-type"].startswith("text/html") and "Log in to SolusVM 2" in html.text


@pytest.mark.parametrize(
    "headers",
    [
        {},
        signed(7, "panel", secret="wrong-secret"),
        signed(8, "panel"),  # signed for another client
        signed(7, "sso"),  # signed for another purpose
        signed(7, "panel", at=time.time() - 3600),
        {"X-Postpay-Timestamp": "now", "X-Postpay-Signature": "x"},
    ],
)
def test_the_panel_answers_only_the_whmcs_hook(enrollment: Enrollment, headers: dict[str, str]) -> None:
    response = enrollment.client.get("/api/v1/panel/7", headers=headers)
    assert response.status_code == 401 and response.json()["code"] == "unauthorized"


def test_the_hook_mints_a_fresh_single_use_link_at_click_time(
    enrollment: Enrollment, enrolled: tuple[str, object]
) -> None:
    email = enrolled[0]
    client_id = client_id_of(enrollment, email)
    assert (
        enrollment.client.post(f"/api/v1/panel/{client_id}/sso", headers=signed(client_id, "panel")).status_code == 401
    )
    minted = enrollment.client.post(f"/api/v1/panel/{client_id}/sso", headers=signed(client_id, "sso"))
    assert minted.status_code == 200
    body = minted.json()
    assert 0 < body["expires_in_seconds"] <= 60
    with TestClient(enrollment.app, base_url=enrollment.settings.public_url, follow_redirects=False) as browser:
        path = body["url"].split("testserver", 1)[1]
        redirect = browser.get(path)
        assert redirect.status_code == 302
        assert httpx.get(redirect.headers["location"]).status_code == 200
        assert browser.get(path).status_code == 409


def test_the_hook_gets_no_link_for_a_client_that_is_not_enrolled(enrollment: Enrollment) -> None:
    email = unique_email()
    enrollment.register(email)
    (link,) = enrollment.verification_links(email)
    enrollment.open_link(link)
    enrollment.wait_for_terms()  # the WHMCS client exists; the terms are not accepted
    client_id = client_id_of(enrollment, email)
    response = enrollment.client.post(f"/api/v1/panel/{client_id}/sso", headers=signed(client_id, "sso"))
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert (
        enrollment.client.get(f"/api/v1/panel/{client_id}", headers=signed(client_id, "panel")).json()["enrolled"]
        is False
    )
