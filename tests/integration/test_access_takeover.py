"""Pre-registration takeover (issue 15, item 1), on the real broker and PostgreSQL.

The attack: register the victim's address with the attacker's password before the victim does. If
anything is created upstream before the address is verified, the attacker's password becomes the
victim's WHMCS login (and, through the panel's SSO button, their SolusVM 2). So: nothing upstream
before verification; a newer registration of a pending address replaces the older one and kills its
links; confirming a registration needs proof of being its registrant (its browser, or its password),
so the mailbox owner cannot confirm the attacker's newer registration by mistake; an existing WHMCS
client is linked only after verification, and its password is never touched.
"""

from __future__ import annotations

import hashlib

import pytest
from pydantic import SecretStr

from tests.support.access import ATTACKER_PASSWORD, VICTIM_PASSWORD, journey_state, real_enrollment, starts_session  # noqa: F401
from tests.support.enrollment import Enrollment, clean_upstreams, clock, unique_email, upstreams  # noqa: F401 - fixtures used by name

pytestmark = [pytest.mark.rabbit, pytest.mark.postgres]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def whmcs_users(enrollment: Enrollment, email: str) -> list[object]:
    return [u for u in enrollment.upstreams.whmcs.state.users.values() if u.email.lower() == email.lower()]


def test_a_registration_creates_nothing_upstream_before_the_email_is_verified(real_enrollment: Enrollment) -> None:
    email = unique_email("victim")
    assert real_enrollment.register(email, password=ATTACKER_PASSWORD).status_code == 303
    real_enrollment.verification_links(email)  # the registration's handler has run: its email went out

    assert real_enrollment.whmcs_clients(email) == [] and whmcs_users(real_enrollment, email) == []
    signup = real_enrollment.signup_row(email)
    assert signup is not None and signup.whmcs_client_id is None
    assert signup.encrypted_password is not None, "kept, encrypted, until the address is verified"


def test_a_pre_registration_gives_the_attacker_nothing_the_victims_registration_wins(
    real_enrollment: Enrollment,
) -> None:
    email = unique_email("victim")
    with real_enrollment.browser() as attacker:
        real_enrollment.register(
            email, name="Eve Mallory", company="Evil Corp", password=ATTACKER_PASSWORD, client=attacker
        )
    (attackers_link,) = real_enrollment.verification_links(email)

    with real_enrollment.browser() as victim:
        real_enrollment.register(
            email, name="Victor Hugo", company="Victim Ltd", password=VICTIM_PASSWORD, client=victim
        )
        _, victims_link = real_enrollment.verification_links(email, count=2)
        assert real_enrollment.open_link(victims_link, victim).status_code == 303
        assert real_enrollment.accept_terms(victim).status_code == 303
        real_enrollment.wait_enrolled(victim)

    (client,) = real_enrollment.whmcs_clients(email)
    assert (client.firstname, client.lastname, client.companyname) == ("Victor", "Hugo", "Victim Ltd")
    assert real_enrollment.owner_password_sha256(email) == sha256(VICTIM_PASSWORD), "the victim's password is the login"
    assert real_enrollment.owner_password_sha256(email) != sha256(ATTACKER_PASSWORD)


def test_a_newer_registration_of_a_pending_address_kills_the_older_ones_links(real_enrollment: Enrollment) -> None:
    email = unique_email()
    with real_enrollment.browser() as first, real_enrollment.browser() as second:
        real_enrollment.register(email, name="First Person", password=ATTACKER_PASSWORD, client=first)
        (older,) = real_enrollment.verification_links(email)
        real_enrollment.register(
            email, name="Second Person", company="Second Co", password=VICTIM_PASSWORD, client=second
        )
        _, newer = real_enrollment.verification_links(email, count=2)
        before = journey_state(real_enrollment)

        for browser in (first, second):
            opened = real_enrollment.fetch_link(older, browser)
            assert opened.status_code == 410 and "replaced by a newer" in opened.text
            assert "Confirm my email address</button>" not in opened.text and not starts_session(opened)
        assert journey_state(real_enrollment) == before
        assert real_enrollment.stage(email) == "awaiting_verification"

        signup = real_enrollment.signup_row(email)
        assert signup is not None and (signup.name, signup.company) == ("Second Person", "Second Co")
        assert real_enrollment.open_link(newer, second).status_code == 303, "the newest link works, in its browser"


def test_the_mailbox_owner_cannot_confirm_a_newer_registration_made_by_someone_else(
    real_enrollment: Enrollment,
) -> None:
    """The attacker registers again after the victim; the victim opens the newest email. Confirming it
    takes the password of the registration it belongs to, which the victim does not know."""
    email = unique_email("victim")
    with real_enrollment.browser() as victim, real_enrollment.browser() as attacker:
        real_enrollment.register(email, name="Victor Hugo", password=VICTIM_PASSWORD, client=victim)
        real_enrollment.verification_links(email)
        real_enrollment.register(email, name="Eve Mallory", password=ATTACKER_PASSWORD, client=attacker)
        _, attackers_link = real_enrollment.verification_links(email, count=2)

        shown = real_enrollment.fetch_link(attackers_link, victim)
        assert shown.status_code == 200 and 'name="password"' in shown.text, "the page asks for the signup's password"
        before = journey_state(real_enrollment)
        for typed in (None, VICTIM_PASSWORD, ""):
            refused = real_enrollment.confirm(shown, victim, password=typed)
            assert refused.status_code == 403 and not starts_session(refused), typed
        assert journey_state(real_enrollment) == before
        assert real_enrollment.whmcs_clients(email) == [] and real_enrollment.stage(email) == "awaiting_verification"

        # The victim signs up again, which replaces the attacker's registration, and confirms in their browser.
        real_enrollment.register(email, name="Victor Hugo", password=VICTIM_PASSWORD, client=victim)
        *_, own_link = real_enrollment.verification_links(email, count=3)
        assert real_enrollment.open_link(own_link, victim).status_code == 303
        real_enrollment.accept_terms(victim)
        real_enrollment.wait_enrolled(victim)
    assert real_enrollment.owner_password_sha256(email) == sha256(VICTIM_PASSWORD)


def test_confirming_in_another_browser_takes_the_registrations_password(real_enrollment: Enrollment) -> None:
    """A customer who registered on one device and opens the email on another types their password."""
    email = unique_email()
    real_enrollment.register(email, password=VICTIM_PASSWORD)
    (link,) = real_enrollment.verification_links(email)
    with real_enrollment.browser() as phone:
        assert real_enrollment.open_link(link, phone, password="Not-the-right-one-77").status_code == 403
        assert real_enrollment.open_link(link, phone, password=VICTIM_PASSWORD).status_code == 303
        real_enrollment.accept_terms(phone)
        real_enrollment.wait_enrolled(phone)
    assert real_enrollment.owner_password_sha256(email) == sha256(VICTIM_PASSWORD)


def test_an_existing_whmcs_client_is_linked_only_after_verification_and_keeps_its_password(
    real_enrollment: Enrollment,
) -> None:
    email = unique_email("existing")
    original = "Original-Passw0rd-of-the-client"
    client_id = real_enrollment.deps.whmcs.add_client(
        firstname="Old", lastname="Customer", email=email, password=SecretStr(original)
    )
    real_enrollment.register(email, name="Someone Else", password=ATTACKER_PASSWORD)
    (link,) = real_enrollment.verification_links(email)
    signup = real_enrollment.signup_row(email)
    assert signup is not None and signup.whmcs_client_id is None, "not linked before the address is verified"

    assert real_enrollment.open_link(link).status_code == 303
    real_enrollment.accept_terms()
    real_enrollment.wait_enrolled()

    signup = real_enrollment.signup_row(email)
    assert signup is not None and signup.whmcs_client_id == client_id and signup.encrypted_password is None
    (client,) = real_enrollment.whmcs_clients(email)
    assert (client.id, client.firstname) == (client_id, "Old")
    assert real_enrollment.owner_password_sha256(email) == sha256(original), "the client's password is never changed"


def test_a_replaced_registrations_api_id_tells_nothing_and_asks_for_nothing(real_enrollment: Enrollment) -> None:
    email = unique_email()

    def api_register(password: str) -> dict[str, str]:
        body = {"name": "Grace Hopper", "company": "", "email": email, "password": password}
        answer = real_enrollment.client.post("/api/v1/signups", json=body)
        assert answer.status_code == 202
        return dict(answer.json())

    older = api_register(ATTACKER_PASSWORD)
    real_enrollment.verification_links(email)
    newer = api_register(VICTIM_PASSWORD)
    real_enrollment.verification_links(email, count=2)
    resent = real_enrollment.client.post(f"/api/v1/signups/{older['signup_id']}/resend")
    assert resent.status_code == 202 and resent.json()["status"] == "awaiting_verification"
    resent_newer = real_enrollment.client.post(f"/api/v1/signups/{newer['signup_id']}/resend")
    assert resent_newer.status_code == 202
    *_, newest = real_enrollment.verification_links(email, count=3)  # one more link: the newer one asked
    with pytest.raises(TimeoutError):
        real_enrollment.verification_links(email, count=4, timeout=2)  # and none on the older one's behalf
    with real_enrollment.browser() as elsewhere:
        assert real_enrollment.open_link(newest, elsewhere, password=VICTIM_PASSWORD).status_code == 303
    assert real_enrollment.client.get(older["status_url"]).json()["status"] == "awaiting_verification"
    assert real_enrollment.client.get(newer["status_url"]).json()["status"] in ("setting_up", "awaiting_terms")
