"""After a customer's whole journey (register, verify, accept terms, log in to SolusVM 2) and a month
close that invoices them (and parks the work of a customer whose currency has no price), no secret is
anywhere postpay writes: not in a log line (postpay's or a library's), an event body or header, a
parked message (body or headers), nor any column of any table in the database.

The secrets searched: every configured secret (signing key, password-encryption key, panel shared
secret, WHMCS API identifier and secret, SolusVM 2 API token), the customer's password (also
URL-encoded, as it travels to WHMCS), the random password postpay gave the SolusVM 2 user, the
verification link's token and the one-time SolusVM 2 login token.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import secrets
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from urllib.parse import quote, quote_plus

import pytest
from pydantic import SecretStr
from sqlalchemy import text

from services.invoicer.settings import InvoicerSettings
from services.provisioner import handlers as provisioner_handlers
from services.scheduler.settings import SchedulerSettings
from shared.bus.rabbit import RabbitBus
from shared.clock import ManualClock
from shared.db import Database
from shared.logging import configure_logging
from shared.periods import BillingPeriod
from tests.support.billing import BillingHarness, Customer, VmHistory
from tests.support.bus_helpers import wait_until
from tests.support.enrollment import Enrollment, RecordingBus, path_of, signup_settings, unique_email
from tests.support.system import SOLUSVM_TOKEN, Upstreams

pytestmark = [pytest.mark.rabbit, pytest.mark.postgres]

PASSWORD = "Quasar-Tangerine-5521-Helix!"
PERIOD = "2026-11"
TIMEZONE = "Europe/Berlin"


@pytest.fixture
def captured_logs(caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    """Every structlog line at DEBUG, and every stdlib log record (httpx, uvicorn, ...) at DEBUG."""
    stream = io.StringIO()
    configure_logging("DEBUG", stream=stream)
    caplog.set_level(logging.DEBUG)
    try:
        yield stream
    finally:
        configure_logging(os.environ.get("POSTPAY_TEST_LOG_LEVEL", "WARNING"))


@pytest.fixture
def generated_passwords(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The random passwords the provisioner gives SolusVM 2 users (the simulator keeps only hashes)."""
    seen: list[str] = []
    original = provisioner_handlers.random_password

    def recording() -> SecretStr:
        password = original()
        seen.append(password.get_secret_value())
        return password

    monkeypatch.setattr(provisioner_handlers, "random_password", recording)
    return seen


def test_no_secret_in_any_log_event_parked_message_or_column_after_a_journey_and_a_close(
    rabbit_bus: RabbitBus,
    postgres_database: Database,
    captured_logs: io.StringIO,
    caplog: pytest.LogCaptureFixture,
    generated_passwords: list[str],
) -> None:
    configured = {
        "signing key": f"signing-{secrets.token_hex(16)}",
        "password key": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "panel secret": f"panel-{secrets.token_hex(16)}",
        "WHMCS identifier": f"ident-{secrets.token_hex(12)}",
        "WHMCS secret": f"whsec-{secrets.token_hex(16)}",
        "SolusVM 2 API token": SOLUSVM_TOKEN,
    }
    settings = signup_settings(
        secret_key=SecretStr(configured["signing key"]),
        password_keys=[SecretStr(configured["password key"])],
        panel_shared_secret=SecretStr(configured["panel secret"]),
    )
    period = BillingPeriod.parse(PERIOD, TIMEZONE)
    clock = ManualClock(period.starts_at + timedelta(days=9))
    recording = RecordingBus(rabbit_bus)
    whmcs_credentials = {"identifier": configured["WHMCS identifier"], "secret": configured["WHMCS secret"]}
    with Upstreams(whmcs=whmcs_credentials) as upstreams:
        harness = BillingHarness(
            upstreams,
            recording,
            postgres_database,
            clock=clock,
            invoicer=InvoicerSettings(token_prices={"USD": Decimal("0.0010"), "EUR": Decimal("0.0009")}),
            scheduler=SchedulerSettings(billing_timezone=TIMEZONE),
        ).start()
        try:
            with Enrollment(upstreams, recording, postgres_database, settings=settings, clock=clock).start() as journey:
                email = unique_email("secrets")
                assert journey.register(email, password=PASSWORD).status_code == 303
                (link,) = journey.verification_links(email)
                journey.open_link(link)
                journey.accept_terms()
                landed = journey.log_in_to_solusvm(journey.wait_enrolled())
                assert landed.status_code == 302
                login_url = landed.headers["location"]

                signup = journey.signup_row(email)
                assert signup is not None and signup.whmcs_client_id and signup.solusvm_user_id
                wait_until(lambda: signup.whmcs_client_id in harness.enrolled_client_ids(), what="customer recorded")
                plan = harness.add_plan("S", 7, 5000)
                customer = Customer(signup.whmcs_client_id, signup.solusvm_user_id, email, "USD", clock())
                harness.add_vms(
                    customer,
                    [
                        VmHistory(
                            "web",
                            plan,
                            [(period.starts_at + timedelta(days=10), period.starts_at + timedelta(days=12))],
                        )
                    ],
                )
                # Its work is parked: no price for GBP. (Its UserProvisioned is parked by signup too: no such signup.)
                unpriced = harness.add_customer(
                    "GBP", [VmHistory("db", plan, [(period.starts_at, period.ends_at)])], enrolled_at=period.starts_at
                )
                harness.enroll([unpriced])

                clock.set(period.ends_at + timedelta(hours=1))
                harness.close(PERIOD)
                harness.wait_settled(PERIOD, 1)
                wait_until(lambda: parked_messages(rabbit_bus, harness, journey), timeout=30, what="work parked")
                wait_until(
                    lambda: len(parked_messages(rabbit_bus, harness, journey)) >= 2,
                    timeout=30,
                    what="the unpriced customer's invoice work parked",
                )
                assert len(harness.invoices_of(customer.client_id)) == 1
                parked = parked_messages(rabbit_bus, harness, journey)
        finally:
            harness.stop()

    verification_token = path_of(link).rsplit("/", 1)[1]
    one_time_token = login_url.rsplit("/", 1)[-1].split("=")[-1]
    searched = {
        **configured,
        "customer password": PASSWORD,
        "customer password, URL-encoded": quote_plus(PASSWORD),
        "customer password, percent-encoded": quote(PASSWORD, safe=""),
        "verification link token": verification_token,
        "SolusVM 2 one-time login token": one_time_token,
        **{f"generated SolusVM 2 password {n}": value for n, value in enumerate(generated_passwords)},
    }
    assert generated_passwords, "the provisioner made the user a password"
    assert len(one_time_token) >= 16, login_url

    places = {
        "log lines (structlog)": captured_logs.getvalue(),
        "log records (stdlib)": "\n".join(
            f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records if not is_the_test_browser(r)
        ),
        "event bodies and headers": "\n".join(body.decode(errors="replace") for body in recording.bodies),
        "parked messages": "\n".join(parked),
        "database columns": every_column(postgres_database),
    }
    assert "WHMCS client ready; password erased" in places["log lines (structlog)"], "the journey's logs were captured"
    assert '"InvoiceCreated"' in places["event bodies and headers"], "the close's events were seen"
    assert str(customer.client_id) in places["database columns"], "the tables were read"
    leaks = [
        f"{what} in {where}"
        for where, haystack in places.items()
        for what, secret in searched.items()
        if secret in haystack
    ]
    if leaks:
        for where, haystack in places.items():
            for what, secret in searched.items():
                at = haystack.find(secret)
                if at >= 0:
                    print("LEAK", what, where, repr(haystack[max(0, at - 300) : at + 100]))
    assert not leaks, leaks


def is_the_test_browser(record: logging.LogRecord) -> bool:
    """httpx logs every request of the test's own browser (TestClient), link tokens in the URL
    included; that is the customer's side, not a line postpay writes."""
    return record.name == "httpx" and "http://testserver/" in record.getMessage()


def parked_messages(bus: RabbitBus, harness: BillingHarness, journey: Enrollment) -> list[str]:
    lot = bus.parking_lot()
    subscriptions = [
        s
        for service in [*harness.context.services.values(), journey.signup, journey.provisioner]
        for s in service.subscriptions
    ]
    found = []
    for subscription in subscriptions:
        for message in lot.list(bus.naming.parking_lot(subscription.queue)):
            found.append(message.body.decode(errors="replace") + "\n" + json.dumps(message.headers, default=str))
    return found


def every_column(db: Database) -> str:
    """Every row of every table in the test's schema, as JSON text (whatever the table or column type)."""
    with db.transaction() as session:
        tables = (
            session.execute(
                text("SELECT table_name FROM information_schema.tables WHERE table_schema = :schema"),
                {"schema": db.schema},
            )
            .scalars()
            .all()
        )
        assert len(tables) > 10, tables
        rows = []
        for table in tables:
            rows += session.execute(text(f'SELECT row_to_json(t)::text FROM "{db.schema}"."{table}" t')).scalars().all()
    return "\n".join(rows)
