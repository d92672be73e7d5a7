"""The enrollment journey through the signup web and both services' handlers, on both buses and both
databases, against the WHMCS and SolusVM 2 simulators and an SMTP capture."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from services.provisioner.store import customers
from services.signup import schema
from shared.db import Database
from tests.support.bus_helpers import wait_until
from tests.support.enrollment import (  # noqa: F401 - fixtures used by name
    STRONG_PASSWORD,
    TEST_CLIENT_IP,
    Enrollment,
    clean_upstreams,
    is_welcome,
    link_in,
    unique_email,
    upstreams,
)
from tests.support.system import Upstreams


@pytest.fixture
def enrollment(clean_upstreams: Upstreams, bus: object, database: Database) -> Iterator[Enrollment]:
    from services.provisioner.settings import ProvisionerSettings

    with Enrollment(
        clean_upstreams, bus, database, provisioner=ProvisionerSettings(solusvm_limit_group_id=7)
    ).start() as running:
        yield running


def test_registration_to_sso_login(enrollment: Enrollment, upstreams: Upstreams) -> None:
    email = unique_email()
    registered = enrollment.register(email, name="Ada King Lovelace", company="Analytical Engines")
    assert registered.status_code == 303
    assert registered.headers["location"] == "/signup/check-email"

    (link,) = enrollment.verification_links(email)
    assert enrollment.whmcs_clients(email) == [], "nothing upstream before the email is verified"
    pending = enrollment.signup_row(email)
    assert pending is not None and pending.encrypted_password is not None, "kept encrypted until the client exists"

    assert enrollment.open_link(link).headers["location"] == "/signup/terms"
    enrollment.wait_for_terms()
    (client,) = enrollment.whmcs_clients(email)
    assert (client.firstname, client.lastname, client.companyname) == ("Ada King", "Lovelace", "Analytical Engines")
    owner = upstreams.whmcs.state.users[client.owner_user_id]
    assert owner.password_sha256 == hashlib.sha256(STRONG_PASSWORD.encode()).hexdigest(), (
        "the chosen password is the WHMCS login"
    )
    signup = enrollment.signup_row(email)
    assert signup is not None and signup.whmcs_client_id == client.id
    assert signup.encrypted_password is None, "the password is erased once the WHMCS client exists"

    assert enrollment.accept_terms().headers["location"] == "/signup/status"
    enrolled = enrollment.wait_enrolled()
    assert "Log in to SolusVM 2" in enrolled.text

    (user,) = enrollment.solusvm_users(email)
    assert (user.billing_user_id, user.roles, user.limit_group_id, user.status) == (client.id, [2], 7, "active")
    with enrollment.db.transaction() as session:
        (customer,) = session.execute(select(customers)).all()
        consents = session.execute(select(schema.consents)).all()
    assert (customer.whmcs_client_id, customer.solusvm_user_id, customer.email) == (client.id, user.id, email)
    assert sorted((c.kind, c.version, c.url) for c in consents) == [
        ("postpay_terms", "2026-11", "https://example.com/postpay-terms"),
        ("terms_of_service", "2026-10", "https://example.com/terms-of-service"),
    ]
    assert all(c.ip_address == TEST_CLIENT_IP and c.user_agent and c.whmcs_client_id == client.id for c in consents)
    upstreams.smtp.wait_for(to=email, matching=is_welcome)

    redirect = enrollment.log_in_to_solusvm(enrolled)
    assert redirect.status_code == 302
    assert redirect.headers["location"].startswith(f"{upstreams.solusvm_url}/auth/by_token?token=")
    landed = httpx.get(redirect.headers["location"])
    assert landed.status_code == 200 and email in landed.text


def test_the_customer_sees_setting_up_while_whmcs_is_down_and_nothing_is_lost(
    enrollment: Enrollment, upstreams: Upstreams
) -> None:
    email = unique_email()
    assert enrollment.register(email).status_code == 303
    (link,) = enrollment.verification_links(email)
    upstreams.whmcs.fault(kind="server_error", route="GetClientsDetails", count=6)
    assert enrollment.open_link(link).status_code == 303
    status = enrollment.client.get("/signup/status")
    assert "setting things up" in status.text and 'http-equiv="refresh"' in status.text
    enrollment.wait_for_terms()
    assert len(enrollment.whmcs_clients(email)) == 1
    assert enrollment.stage(email) == "awaiting_terms"


def test_a_replayed_registration_or_terms_event_creates_nothing_twice(
    enrollment: Enrollment, upstreams: Upstreams
) -> None:
    """Events re-emitted under new ids (a replay, a republished outbox row with another id) still
    find the WHMCS client and the SolusVM 2 user that exist; delivery duplicates are skipped by the inbox."""
    from shared.events.enrollment import AcceptedTerms, TermsAccepted, UserRegistered
    from tests.support.bus_helpers import publish

    email = unique_email()
    enrollment.enroll(email)
    signup = enrollment.signup_row(email)
    assert signup is not None and signup.whmcs_client_id is not None
    registered = UserRegistered(signup_id=signup.id, email=email, name=signup.name, company=signup.company)
    accepted = TermsAccepted(
        signup_id=signup.id,
        email=email,
        whmcs_client_id=signup.whmcs_client_id,
        accepted=(AcceptedTerms(kind="terms_of_service", url="https://x", version="1"),),
        accepted_at=signup.created_at,
    )
    for event in (registered, registered, accepted, accepted):
        publish(enrollment.bus, event)
    # Signup: three journey events, two replayed registrations, two re-announced enrollments.
    wait_until(lambda: enrollment.count(enrollment.signup.inbox.table) == 7, what="replays handled by signup")
    wait_until(lambda: enrollment.count(enrollment.provisioner.inbox.table) == 3, what="replays handled by provisioner")
    assert len(enrollment.whmcs_clients(email)) == 1
    assert len(enrollment.solusvm_users(email)) == 1
    assert enrollment.count(customers) == 1
    assert enrollment.stage(email) == "enrolled"
    assert len([m for m in upstreams.smtp.to(email) if is_welcome(m)]) == 1, (
        "one welcome, however often enrolled is announced"
    )
    assert len(upstreams.smtp.to(email)) == 2, "no new verification link for a verified email"


def test_the_same_delivery_twice_has_one_effect(enrollment: Enrollment, upstreams: Upstreams) -> None:
    from shared.events.base import new_envelope
    from shared.events.enrollment import UserRegistered
    from tests.support.bus_helpers import metric, publish

    email = unique_email()
    enrollment.register(email)
    enrollment.verification_links(email)
    signup = enrollment.signup_row(email)
    assert signup is not None
    envelope = new_envelope(UserRegistered(signup_id=signup.id, email=email, name=signup.name), producer="test")
    queue = "signup.send_verification"
    before = metric("postpay_messages_handled_total", handler=queue, outcome="duplicate")
    for _ in range(3):
        publish(enrollment.bus, envelope)
    wait_until(
        lambda: metric("postpay_messages_handled_total", handler=queue, outcome="duplicate") >= before + 2,
        what="duplicates skipped",
    )
    assert enrollment.whmcs_clients(email) == []
    # A UserRegistered under another id than the registration's mails nothing: only the web registers.
    emails = upstreams.smtp.to(email)
    assert (
        len({link_in(message) for message in emails}) == 1 and len({message["Message-ID"] for message in emails}) == 1
    )
