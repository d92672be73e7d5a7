"""Links, cookies and server-to-server calls that were not minted for the use they are put to.

Tampered, expired, reused and another customer's links have their own tests (test_signup_security.py,
test_signup_sso.py). Here: a genuine token used for another purpose, a token signed by another
deployment's key for a link that really exists, a session cookie forged with another key for a real
signup, and the panel's login endpoint called without a valid signature. Each is refused (a verification
link both when opened and when its confirm button is pressed), and nothing changes: no link used, no
stage moved, no consent, no event, no SolusVM 2 login token.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from services.signup import schema
from services.signup.tokens import BrowserSession, Signer, encode_session, mint_link
from tests.support.enrollment import (  # noqa: F401 - fixtures used by name
    TEST_PANEL_SECRET,
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

ANOTHER_DEPLOYMENT = Signer("another-deployment-secret-0123456789")


def snapshot(enrollment: Enrollment) -> tuple[object, ...]:
    with enrollment.db.transaction() as session:
        links = sorted(map(str, session.execute(select(schema.links.c.id, schema.links.c.used_at)).all()))
        stages = sorted(session.execute(select(schema.signups.c.id, schema.signups.c.stage)).all())
        consents = session.execute(select(func.count()).select_from(schema.consents)).scalar_one()
        outbox = session.execute(select(func.count()).select_from(enrollment.signup.outbox.table)).scalar_one()
    return tuple(links), tuple(map(str, stages)), consents, outbox, len(enrollment.upstreams.solusvm_state.tokens)


def link_row(enrollment: Enrollment, purpose: str) -> object:
    with enrollment.db.transaction() as session:
        return session.execute(
            select(schema.links).where(schema.links.c.purpose == purpose).order_by(schema.links.c.created_at.desc())
        ).first()


def confirm(enrollment: Enrollment, path: str) -> httpx.Response:
    """Press "Confirm my email address" for ``path`` (a POST with this browser's valid CSRF token)."""
    return enrollment.client.post(path, data={"csrf_token": csrf_from(enrollment.client.get("/signup").text)})


@pytest.fixture
def enrolled_with_login_link(enrollment: Enrollment) -> tuple[str, str]:
    """An enrolled customer's verification path (used) and a fresh, unused login path."""
    email = unique_email()
    page = enrollment.enroll(email)
    minted = enrollment.client.post("/sso", data={"csrf_token": csrf_from(page.text)})
    assert minted.status_code == 303
    (verification,) = enrollment.verification_links(email)
    return path_of(verification), str(minted.headers["location"])


def test_a_verification_token_is_no_login_link_and_a_login_token_no_verification_link(
    enrollment: Enrollment, enrolled_with_login_link: tuple[str, str]
) -> None:
    _, login_path = enrolled_with_login_link
    newcomer = unique_email()
    enrollment.register(newcomer, client=TestClient(enrollment.app, base_url=enrollment.settings.public_url))
    (verification,) = enrollment.verification_links(newcomer)
    verify_token, login_token = path_of(verification).rsplit("/", 1)[1], login_path.rsplit("/", 1)[1]
    before = snapshot(enrollment)

    assert enrollment.client.get(f"/sso/{verify_token}").status_code in (400, 404)
    assert enrollment.client.get(f"/verify/{login_token}").status_code in (400, 404)
    assert confirm(enrollment, f"/verify/{login_token}").status_code in (400, 404)
    assert snapshot(enrollment) == before
    assert enrollment.client.get(login_path).status_code == 302, "the genuine login link still works"


def test_a_link_signed_by_another_deployment_is_refused_even_for_a_real_link(
    enrollment: Enrollment, enrolled_with_login_link: tuple[str, str]
) -> None:
    newcomer = unique_email()
    enrollment.register(newcomer, client=TestClient(enrollment.app, base_url=enrollment.settings.public_url))
    enrollment.verification_links(newcomer)
    verify, sso = link_row(enrollment, "verify"), link_row(enrollment, "sso")
    later = datetime.now(UTC) + timedelta(hours=1)
    before = snapshot(enrollment)

    forged_verify = mint_link(ANOTHER_DEPLOYMENT, "verify", verify.id, later)  # type: ignore[attr-defined]
    forged_sso = mint_link(ANOTHER_DEPLOYMENT, "sso", sso.id, later)  # type: ignore[attr-defined]
    assert enrollment.client.get(f"/verify/{forged_verify}").status_code == 400
    assert confirm(enrollment, f"/verify/{forged_verify}").status_code == 400
    assert enrollment.client.get(f"/sso/{forged_sso}").status_code == 400
    assert snapshot(enrollment) == before
    assert enrollment.stage(newcomer) == "awaiting_verification"


def test_a_session_cookie_forged_with_another_key_gives_no_power_over_a_real_signup(enrollment: Enrollment) -> None:
    email = unique_email()
    enrollment.register(email)
    enrollment.verification_links(email)
    signup = enrollment.signup_row(email)
    assert signup is not None
    with TestClient(enrollment.app, base_url=enrollment.settings.public_url, follow_redirects=False) as attacker:
        token = csrf_from(attacker.get("/signup").text)
        forged = encode_session(ANOTHER_DEPLOYMENT, BrowserSession.start(signup.id, "verified", datetime.now(UTC)))
        attacker.cookies.set("postpay_session", forged)
        before = snapshot(enrollment)
        assert attacker.get("/signup/terms").status_code == 403
        accepted = attacker.post(
            "/signup/terms", data={"csrf_token": token, "accept_terms_of_service": "yes", "accept_postpay_terms": "yes"}
        )
        assert accepted.status_code == 403
        assert attacker.post("/sso", data={"csrf_token": token}).status_code == 403
        assert snapshot(enrollment) == before


def signed(client_id: int, purpose: str, *, secret: str = TEST_PANEL_SECRET, at: float | None = None) -> dict[str, str]:
    return panel_headers(client_id, purpose, secret=secret, at=at)


def test_the_panel_login_endpoint_without_a_valid_signature_mints_nothing(enrollment: Enrollment) -> None:
    email = unique_email()
    enrollment.enroll(email)
    signup = enrollment.signup_row(email)
    assert signup is not None and signup.whmcs_client_id is not None
    client_id = signup.whmcs_client_id
    before = snapshot(enrollment)
    for headers in (
        {},
        signed(client_id, "sso", secret="not-the-shared-secret"),
        signed(client_id + 1, "sso"),  # a genuine signature, for another client
        signed(client_id, "panel"),  # a genuine signature, for rendering the panel only
        signed(client_id, "sso", at=time.time() - 3600),  # captured an hour ago
        {"X-Postpay-Timestamp": str(int(time.time())), "X-Postpay-Nonce": "n" * 32, "X-Postpay-Signature": "0" * 64},
    ):
        response = enrollment.client.post(f"/api/v1/panel/{client_id}/sso", headers=headers)
        assert response.status_code == 401 and "url" not in response.json(), headers
    assert snapshot(enrollment) == before
    assert enrollment.client.post(f"/api/v1/panel/{client_id}/sso", headers=signed(client_id, "sso")).status_code == 200
