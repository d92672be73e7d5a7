"""The signup's consuming handlers on fakes: the verification email, the WHMCS client made (or found)
only after the email is verified, and enrollment with its welcome email, moved only by an event that
matches the signup's own record."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from services.signup import schema, store
from services.signup.accounts import account_of
from services.signup.figures_store import latest_invoices, usage_of
from services.signup.schema import Stage
from services.signup.settings import SignupSettings
from services.signup.vault import PasswordVault
from shared.events.accounts import AccountStanding, AccountStatus, InvoicePaid, OverdueInvoice, UserSuspended
from shared.events.billing import InvoiceCreated
from shared.events.enrollment import EmailVerified, UserProvisioned, UserRegistered, VerificationEmailRequested
from shared.events.usage import UsageToDateReported
from shared.mail import MailUnavailable
from tests.fakes.service import NOW, ServiceUnderTest

PASSWORD = "Correct-Horse-Battery-9"
SETTINGS = SignupSettings(public_url="https://signup.example.com")


@pytest.fixture
def signup() -> Iterator[ServiceUnderTest]:
    with ServiceUnderTest("signup", settings=[SETTINGS]) as service:
        yield service


def register(service: ServiceUnderTest, email: str = "ada@example.com", *, currency: str | None = "EUR") -> uuid.UUID:
    """A signup as the web writes it: waiting for its email to be verified; its id is its registration's."""
    signup_id = uuid.uuid4()
    with service.db.transaction() as session:
        store.insert_signup(
            session,
            signup_id=signup_id,
            email=email,
            email_key=email.casefold(),
            name="Ada Lovelace",
            company="",
            encrypted_password=PasswordVault(SETTINGS.password_keys).encrypt(SecretStr(PASSWORD)),
            registration_ip="203.0.113.9",
            now=NOW,
            currency=currency,
        )
    return signup_id


def move(service: ServiceUnderTest, signup_id: uuid.UUID, to: Stage, **values: object) -> None:
    with service.db.transaction() as session:
        assert store.advance(session, signup_id, to, NOW, **values)


def current(service: ServiceUnderTest, signup_id: uuid.UUID) -> schema.Signup:
    with service.db.transaction() as session:
        found = store.get_signup(session, signup_id)
    assert found is not None
    return found


def registered(signup_id: uuid.UUID, email: str = "ada@example.com") -> UserRegistered:
    return UserRegistered(signup_id=signup_id, email=email, name="Ada Lovelace")


def test_a_registration_is_mailed_its_verification_link_once(signup: ServiceUnderTest) -> None:
    signup_id = register(signup)
    event = signup.envelope(registered(signup_id), event_id=signup_id)
    assert signup.deliver("send_verification", event).kind == "done"
    assert signup.deliver("send_verification", event).kind == "duplicate"

    ((email, key),) = signup.mailer.sent
    assert email.to == "ada@example.com" and "https://signup.example.com/verify/" in email.text
    assert key is not None and key.startswith("verify-")
    assert current(signup, signup_id).stage == Stage.AWAITING_VERIFICATION
    assert signup.whmcs.calls == []  # nothing upstream before the address is verified


def test_a_registration_that_is_no_longer_the_signups_own_is_not_mailed(signup: ServiceUnderTest) -> None:
    signup_id = register(signup)
    assert signup.deliver("send_verification", registered(signup_id)).kind == "done"  # another event id
    assert signup.mailer.sent == []


def test_a_mail_server_that_is_down_is_retried(signup: ServiceUnderTest) -> None:
    signup_id = register(signup)
    signup.mailer.fail("send", MailUnavailable("SMTP down"))
    event = signup.envelope(registered(signup_id), event_id=signup_id)
    assert signup.deliver("send_verification", event).kind == "retry"
    assert signup.deliver("send_verification", event, attempt=1).kind == "done"
    assert len(signup.mailer.sent) == 1


def test_a_new_link_revokes_the_older_ones(signup: ServiceUnderTest) -> None:
    signup_id = register(signup)
    signup.deliver("send_verification", signup.envelope(registered(signup_id), event_id=signup_id))
    signup.clock.advance(minutes=5)
    signup.deliver("send_new_verification", VerificationEmailRequested(signup_id=signup_id, email="ada@example.com"))

    (first, first_key), (second, second_key) = signup.mailer.sent
    assert first.text != second.text and "/verify/" in second.text and first_key != second_key
    with signup.db.transaction() as session:
        rows = session.execute(select(schema.links).order_by(schema.links.c.created_at)).all()
    assert [row.revoked_at is not None for row in rows] == [True, False]


def verified(service: ServiceUnderTest, signup_id: uuid.UUID) -> str:
    event = EmailVerified(signup_id=signup_id, email="ada@example.com", verified_at=NOW)
    return service.deliver("link_client", event).kind


def test_a_verified_email_creates_the_whmcs_client_with_the_registrations_password(signup: ServiceUnderTest) -> None:
    signup_id = register(signup, currency="EUR")
    move(signup, signup_id, Stage.LINKING_CLIENT, email_verified_at=NOW)
    assert verified(signup, signup_id) == "done"

    (client,) = signup.whmcs.clients.values()
    assert (client.email, client.firstname, client.lastname, client.currency_code) == (
        "ada@example.com",
        "Ada",
        "Lovelace",
        "EUR",
    )
    assert signup.whmcs.passwords[client.id] == PASSWORD
    after = current(signup, signup_id)
    assert (after.stage, after.whmcs_client_id, after.billing_currency) == (Stage.AWAITING_TERMS, client.id, "EUR")
    assert after.encrypted_password is None  # erased once WHMCS has it

    assert verified(signup, signup_id) == "done"  # a replay: done already
    assert signup.whmcs.calls.count("find_or_add_client") == 1


def test_an_existing_client_is_linked_as_it_is_and_keeps_its_currency(signup: ServiceUnderTest) -> None:
    existing = signup.whmcs.add_existing_client("ada@example.com", currency="GBP")
    signup_id = register(signup, currency="EUR")
    move(signup, signup_id, Stage.LINKING_CLIENT, email_verified_at=NOW)
    verified(signup, signup_id)

    assert list(signup.whmcs.clients) == [existing.id] and existing.id not in signup.whmcs.passwords
    after = current(signup, signup_id)
    assert (after.whmcs_client_id, after.billing_currency, after.currency) == (existing.id, "GBP", "EUR")


def test_an_unverified_signup_gets_no_client_whatever_the_event_says(signup: ServiceUnderTest) -> None:
    signup_id = register(signup)
    assert verified(signup, signup_id) == "done"
    assert signup.whmcs.calls == [] and current(signup, signup_id).stage == Stage.AWAITING_VERIFICATION
    assert (
        signup.deliver(
            "link_client", EmailVerified(signup_id=uuid.uuid4(), email="x@example.com", verified_at=NOW)
        ).kind
        == "park"
    )  # no such signup


def provisioning(service: ServiceUnderTest) -> tuple[uuid.UUID, int]:
    signup_id = register(service)
    move(service, signup_id, Stage.LINKING_CLIENT, email_verified_at=NOW)
    verified(service, signup_id)
    move(service, signup_id, Stage.PROVISIONING, terms_accepted_at=NOW)
    client_id = current(service, signup_id).whmcs_client_id
    assert client_id is not None
    return signup_id, client_id


def test_the_provisioned_user_enrolls_the_customer_and_welcomes_them_once(signup: ServiceUnderTest) -> None:
    signup_id, client_id = provisioning(signup)
    user = signup.solusvm.add_user("ada@example.com", billing_user_id=client_id)
    event = signup.envelope(
        UserProvisioned(
            signup_id=signup_id,
            email="ada@example.com",
            whmcs_client_id=client_id,
            solusvm_user_id=user.id,
            enrolled_at=NOW,
        )
    )
    assert signup.deliver("complete_enrollment", event).kind == "done"
    assert signup.deliver("complete_enrollment", event).kind == "duplicate"

    after = current(signup, signup_id)
    assert (after.stage, after.solusvm_user_id, after.welcome_sent_at) == (Stage.ENROLLED, user.id, NOW)
    (welcome,) = signup.mailer.to("ada@example.com")
    assert welcome.subject.startswith("Welcome to SolusVM 2") and SETTINGS.whmcs_client_area_url in welcome.text


def test_a_provisioned_event_naming_someone_elses_user_moves_nothing(signup: ServiceUnderTest) -> None:
    signup_id, client_id = provisioning(signup)
    other = signup.solusvm.add_user("mallory@example.com")
    forged = UserProvisioned(
        signup_id=signup_id,
        email="ada@example.com",
        whmcs_client_id=client_id,
        solusvm_user_id=other.id,
        enrolled_at=NOW,
    )
    assert signup.deliver("complete_enrollment", forged).kind == "done"
    assert current(signup, signup_id).stage == Stage.PROVISIONING and signup.mailer.sent == []


def test_a_new_link_asked_after_enrollment_says_how_to_log_in(signup: ServiceUnderTest) -> None:
    signup_id, client_id = provisioning(signup)
    user = signup.solusvm.add_user("ada@example.com", billing_user_id=client_id)
    signup.deliver(
        "complete_enrollment",
        UserProvisioned(
            signup_id=signup_id,
            email="ada@example.com",
            whmcs_client_id=client_id,
            solusvm_user_id=user.id,
            enrolled_at=NOW,
        ),
    )
    signup.deliver("send_new_verification", VerificationEmailRequested(signup_id=signup_id, email="ada@example.com"))

    welcome, told = signup.mailer.to("ada@example.com")
    assert "already" in told.subject and "/verify/" not in told.text


# -- what the client area shows: the account's standing and the figures ----------------------------
def standing(status: AccountStatus, revision: int, overdue: tuple[int, ...] = ()) -> AccountStanding:
    return AccountStanding(status=status, overdue_invoice_ids=overdue, revision=revision)


def test_the_newest_standing_is_kept_whatever_order_the_events_come_in(signup: ServiceUnderTest) -> None:
    suspended = UserSuspended(
        whmcs_client_id=7,
        solusvm_user_id=70,
        email="ada@example.com",
        suspended_at=NOW,
        overdue_invoices=(OverdueInvoice(invoice_id=31, due_date=NOW.date(), total=Decimal("1")),),
        standing=standing("suspended", 2, (31,)),
    )
    paid = InvoicePaid(whmcs_client_id=7, invoice_id=31, status="Paid", standing=standing("active", 3))
    assert signup.deliver("record_account_standing", paid).kind == "done"
    assert signup.deliver("record_account_standing", suspended).kind == "done"  # older: ignored

    view = account_of(signup.db, 7)
    assert view is not None and (view.status, view.overdue_invoice_ids, view.revision) == ("active", (), 3)
    assert account_of(signup.db, 8) is None


def test_invoices_and_the_month_so_far_are_kept_for_the_panel(signup: ServiceUnderTest) -> None:
    signup.deliver(
        "record_invoice",
        InvoiceCreated(
            whmcs_client_id=7,
            period="2026-10",
            invoice_id=31,
            currency="EUR",
            total=Decimal("5.14"),
            line_count=3,
            due_date=NOW.date(),
            run_key="postpay:7:2026-10",
        ),
    )
    signup.deliver(
        "record_invoice", InvoicePaid(whmcs_client_id=7, invoice_id=31, status="Paid", standing=standing("active", 4))
    )
    month = {
        "whmcs_client_id": 7,
        "solusvm_user_id": 70,
        "period": "2026-11",
        "starts_at": NOW.replace(day=1, hour=0),
        "source": "endpoint",
        "vms": (),
    }
    signup.deliver("record_usage_to_date", UsageToDateReported(**month, as_of=NOW, total_tokens=0))
    signup.deliver("record_usage_to_date", UsageToDateReported(**month, as_of=NOW - timedelta(hours=1), total_tokens=0))

    with signup.db.transaction() as session:
        (invoice,) = latest_invoices(session, 7, limit=5)
        figure, _ = usage_of(session, 7)
    assert (invoice.invoice_id, invoice.total, invoice.settled_status) == (31, Decimal("5.14"), "Paid")
    assert figure is not None and figure.as_of == NOW  # the older figure, arriving later, did not replace it
