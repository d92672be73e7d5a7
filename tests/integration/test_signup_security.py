"""The signup web's security rules, each on its own: CSRF, rate limits shared by replicas, duplicate
emails, and verification links that are tampered with, expired or reused."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from services.signup import schema
from shared.bus.memory import InMemoryBus
from shared.clock import ManualClock
from shared.db import Database
from simulators.smtp import text_of
from tests.support.bus_helpers import wait_until
from tests.support.enrollment import (  # noqa: F401 - fixtures used by name
    TEST_CLIENT_IP,
    Enrollment,
    clean_upstreams,
    clock,
    csrf_from,
    enrollment,
    signup_settings,
    unique_email,
    upstreams,
)
from tests.support.system import Upstreams


def outbox_rows(enrollment: Enrollment) -> int:
    return enrollment.count(enrollment.signup.outbox.table)


# CSRF ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "forged-token", "é"])
def test_registration_without_a_valid_csrf_token_is_refused_and_stores_nothing(
    enrollment: Enrollment, token: str | None
) -> None:
    enrollment.client.get("/signup")  # the browser has a CSRF cookie, the attacker's form lacks the token
    form = {"name": "Ada Lovelace", "email": unique_email(), "password": "Tr0ub4dor&3-horse"}
    if token is not None:
        form["csrf_token"] = token
    response = enrollment.client.post("/signup", data=form)
    assert response.status_code == 403
    assert "form has expired" in response.text
    assert enrollment.count(schema.signups) == 0


def test_a_csrf_token_is_worthless_with_another_browsers_cookie(enrollment: Enrollment) -> None:
    token_of_victim = csrf_from(enrollment.client.get("/signup").text)
    with TestClient(enrollment.app, base_url=enrollment.settings.public_url) as attacker:
        attacker.get("/signup")
        form = {"csrf_token": token_of_victim, "name": "Eve", "email": unique_email(), "password": "Tr0ub4dor&3-horse"}
        assert attacker.post("/signup", data=form).status_code == 403


def test_terms_and_sso_forms_need_csrf_too(enrollment: Enrollment) -> None:
    email = unique_email()
    enrollment.register(email)
    (link,) = enrollment.verification_links(email)
    enrollment.open_link(link)
    enrollment.wait_for_terms()
    refused = enrollment.client.post(
        "/signup/terms", data={"accept_terms_of_service": "yes", "accept_postpay_terms": "yes"}
    )
    assert refused.status_code == 403
    assert enrollment.count(schema.consents) == 0
    assert enrollment.client.post("/sso", data={}).status_code == 403


# Rate limits -----------------------------------------------------------------------------------------


def second_replica(enrollment: Enrollment) -> TestClient:
    """Another signup web process on the same database (its own app, its own memory)."""
    from services.signup.web import create_app

    app = create_app(enrollment.db, enrollment.settings, enrollment.deps.solusvm, clock=enrollment.deps.clock)
    return TestClient(
        app, base_url=enrollment.settings.public_url, follow_redirects=False, client=(TEST_CLIENT_IP, 50001)
    )


def test_registrations_per_ip_are_limited_across_replicas(
    upstreams: Upstreams, memory_bus: InMemoryBus, database: Database
) -> None:
    settings = signup_settings(registrations_per_ip=3, registrations_per_email=100)
    with Enrollment(upstreams, memory_bus, database, settings=settings).start() as enrollment:
        other = second_replica(enrollment)
        answers = [
            enrollment.register(unique_email(), client=client).status_code
            for client in (enrollment.client, other, enrollment.client, other)
        ]
        assert answers == [303, 303, 303, 429]
        limited = enrollment.register(unique_email())
        assert limited.status_code == 429 and "Too many attempts" in limited.text
        assert int(limited.headers["Retry-After"]) > 0
        assert enrollment.count(schema.signups) == 3


def test_registrations_per_email_are_limited(upstreams: Upstreams, memory_bus: InMemoryBus, database: Database) -> None:
    settings = signup_settings(registrations_per_ip=100, registrations_per_email=2)
    with Enrollment(upstreams, memory_bus, database, settings=settings).start() as enrollment:
        email = unique_email()
        assert [enrollment.register(email.upper() if i else email).status_code for i in range(3)] == [303, 303, 429]
        assert enrollment.register(unique_email()).status_code == 303, "another email is not affected"


def test_the_limit_window_passes(
    upstreams: Upstreams, memory_bus: InMemoryBus, database: Database, clock: ManualClock
) -> None:
    settings = signup_settings(registrations_per_ip=1, rate_limit_window_seconds=3600)
    with Enrollment(upstreams, memory_bus, database, settings=settings, clock=clock).start() as enrollment:
        assert enrollment.register(unique_email()).status_code == 303
        assert enrollment.register(unique_email()).status_code == 429
        clock.advance(hours=1)
        assert enrollment.register(unique_email()).status_code == 303


def test_resends_are_limited_per_email_and_per_ip(
    upstreams: Upstreams, memory_bus: InMemoryBus, database: Database
) -> None:
    settings = signup_settings(resends_per_email=2, resends_per_ip=3)
    with Enrollment(upstreams, memory_bus, database, settings=settings).start() as enrollment:
        first, second = unique_email(), unique_email()
        for email in (first, second):
            enrollment.register(email)
            enrollment.verification_links(email)

        def resend(email: str, client: TestClient) -> int:
            token = csrf_from(client.get("/signup/check-email").text)
            return client.post("/signup/resend", data={"csrf_token": token, "email": email}).status_code

        other = second_replica(enrollment)
        assert [resend(first, enrollment.client), resend(first, other), resend(first, enrollment.client)] == [
            200,
            200,
            429,
        ]
        assert resend(second, other) == 429, "the IP's third resend is its limit: the fourth is refused"
        enrollment.verification_links(first, count=3)  # the registration's link and two resent ones
        assert len(upstreams.smtp.to(first)) == 3


def test_resend_does_not_tell_who_signed_up(enrollment: Enrollment) -> None:
    token = csrf_from(enrollment.client.get("/signup/check-email").text)
    response = enrollment.client.post("/signup/resend", data={"csrf_token": token, "email": "nobody@example.com"})
    assert response.status_code == 200
    assert "If <strong>nobody@example.com</strong> has a signup with us" in response.text
    assert outbox_rows(enrollment) == 0


# Duplicate emails ------------------------------------------------------------------------------------


def test_an_enrolled_customer_who_registers_again_is_mailed_how_to_log_in_and_nothing_is_created(
    enrollment: Enrollment,
) -> None:
    """The answer is the same as for anyone (test_access_enumeration.py); the email tells the owner."""
    email = unique_email()
    enrollment.enroll(email)
    before = enrollment.signup_row(email)
    again = enrollment.register(email.upper(), name="Someone Else", password="An0ther-Passw0rd!")
    assert again.status_code == 303 and again.headers["location"] == "/signup/check-email"
    api = enrollment.client.post(
        "/api/v1/signups", json={"name": "X Y", "email": email, "password": "An0ther-Passw0rd!"}
    )
    assert api.status_code == 202 and api.json()["status"] == "awaiting_verification"
    notices = enrollment.upstreams.smtp.wait_for(
        to=email, matching=lambda m: "already have" in str(m["Subject"]), count=2
    )
    assert all(enrollment.settings.whmcs_client_area_url in text_of(message) for message in notices)
    after = enrollment.signup_row(email)
    assert before is not None and after is not None and enrollment.count(schema.signups) == 1
    assert (after.name, after.stage, after.whmcs_client_id, after.encrypted_password) == (
        before.name,
        before.stage,
        before.whmcs_client_id,
        None,
    )
    assert len(enrollment.whmcs_clients(email)) == 1 and len(enrollment.solusvm_users(email)) == 1


def test_registering_again_before_verifying_replaces_the_registration_and_sends_a_new_link(
    enrollment: Enrollment,
) -> None:
    email = unique_email()
    enrollment.register(email)
    enrollment.verification_links(email)
    again = enrollment.register(email, name="Ada King", password="A-different-passw0rd")
    assert again.status_code == 303 and again.headers["location"] == "/signup/check-email"
    first, second = enrollment.verification_links(email, count=2)
    assert first != second
    signup = enrollment.signup_row(email)
    assert enrollment.count(schema.signups) == 1 and signup is not None and signup.name == "Ada King"
    assert enrollment.whmcs_clients(email) == [], "nothing upstream before the email is verified"


# Verification links ----------------------------------------------------------------------------------


def state(enrollment: Enrollment) -> tuple[object, ...]:
    with enrollment.db.transaction() as session:
        links = session.execute(select(schema.links.c.id, schema.links.c.used_at)).all()
        stages = session.execute(select(schema.signups.c.stage)).scalars().all()
    return tuple(sorted(map(str, links))), tuple(stages), outbox_rows(enrollment)


def tamper(link: str) -> str:
    token = link.rsplit("/", 1)[1]
    flipped = token[:3] + ("A" if token[3] != "A" else "B") + token[4:]
    return link.rsplit("/", 1)[0] + "/" + flipped


@pytest.mark.parametrize(
    "change",
    [tamper, lambda link: link[:-5], lambda link: link + "x", lambda link: link.rsplit("/", 1)[0] + "/..%2F..%2Fetc"],
)
def test_a_tampered_link_gets_a_clear_page_and_changes_nothing(enrollment: Enrollment, change: object) -> None:
    email = unique_email()
    enrollment.register(email)
    (link,) = enrollment.verification_links(email)
    before = state(enrollment)
    response = enrollment.open_link(change(link))  # type: ignore[operator]
    assert response.status_code in (400, 404)
    assert "not valid" in response.text or "not found" in response.text.lower()
    assert state(enrollment) == before
    assert enrollment.open_link(link).status_code == 303, "the genuine link still works"


def test_an_expired_link_gets_a_clear_page_changes_nothing_and_offers_a_new_one(
    enrollment: Enrollment, clock: ManualClock
) -> None:
    email = unique_email()
    enrollment.register(email)
    (link,) = enrollment.verification_links(email)
    clock.advance(hours=48)
    before = state(enrollment)
    response = enrollment.open_link(link)
    assert response.status_code == 410 and "expired" in response.text
    assert state(enrollment) == before
    resend = enrollment.client.post("/signup/resend", data={"csrf_token": csrf_from(response.text), "email": email})
    assert resend.status_code == 200
    _, fresh = enrollment.verification_links(email, count=2)
    assert enrollment.open_link(fresh).status_code == 303


def test_a_used_link_gets_a_clear_page_and_changes_nothing(enrollment: Enrollment) -> None:
    email = unique_email()
    enrollment.register(email)
    (link,) = enrollment.verification_links(email)
    assert enrollment.open_link(link).status_code == 303
    wait_until(lambda: enrollment.stage(email) == "awaiting_terms", what="terms unlocked")
    before = state(enrollment)
    with TestClient(enrollment.app, base_url=enrollment.settings.public_url, follow_redirects=False) as someone_else:
        reused = someone_else.get(link.split("testserver", 1)[1])
        assert reused.status_code == 409 and "already been used" in reused.text
        assert "Continue where you left off" not in reused.text
        assert someone_else.get("/signup/terms").status_code == 403, "a used link gives another browser nothing"
    assert state(enrollment) == before
    assert "Continue where you left off" in enrollment.open_link(link).text, "its own browser is shown the way on"


def test_a_registered_but_unverified_browser_cannot_accept_terms_or_log_in(enrollment: Enrollment) -> None:
    """Registering someone else's email gives the registering browser no power over that account."""
    email = unique_email()
    enrollment.register(email)
    enrollment.verification_links(email)
    page = enrollment.client.get("/signup/check-email")
    token = csrf_from(page.text)
    assert enrollment.client.get("/signup/terms").status_code == 403
    refused = enrollment.client.post(
        "/signup/terms", data={"csrf_token": token, "accept_terms_of_service": "yes", "accept_postpay_terms": "yes"}
    )
    assert refused.status_code == 403
    assert enrollment.client.post("/sso", data={"csrf_token": token}).status_code == 403
    assert enrollment.stage(email) == "awaiting_verification"


def test_both_terms_must_be_ticked(enrollment: Enrollment) -> None:
    email = unique_email()
    enrollment.register(email)
    (link,) = enrollment.verification_links(email)
    enrollment.open_link(link)
    refused = enrollment.accept_terms(kinds=("terms_of_service",))
    assert refused.status_code == 422 and "Please accept the post-pay terms" in refused.text
    assert enrollment.count(schema.consents) == 0 and enrollment.stage(email) == "awaiting_terms"
    assert enrollment.accept_terms().status_code == 303
    assert enrollment.count(schema.consents) == 2
    token = csrf_from(enrollment.client.get("/signup/check-email").text)
    twice = enrollment.client.post(
        "/signup/terms", data={"csrf_token": token, "accept_terms_of_service": "yes", "accept_postpay_terms": "yes"}
    )
    assert twice.status_code == 303 and enrollment.count(schema.consents) == 2, "a second submission records nothing"
