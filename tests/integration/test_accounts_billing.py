"""The account lifecycle's storage and its neighbours: a locked customer's usage is still invoiced at
the month's close; the scheduler asks for one accounts sync per billing day; racing checks and late
panel news cannot undo a newer decision; the migrations build the tables."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import inspect, select

from postpay.bootstrap import service_builder
from services.provisioner import store as provisioner_store
from services.provisioner.store import invoice_ids_of
from services.scheduler import store as scheduler_store
from services.scheduler.closing import Scheduler
from services.scheduler.settings import SchedulerSettings
from services.signup.accounts import account_view
from services.signup.handlers import record_account_standing
from shared import migrations
from shared.bus.handler_context import HandlerContext
from shared.bus.memory import InMemoryBus
from shared.clock import ManualClock
from shared.db import Database
from shared.dependencies import Dependencies
from shared.events.accounts import AccountStanding, OverdueInvoice, UserReactivated, UserSuspended
from shared.events.base import new_envelope
from shared.events.enrollment import UserProvisioned
from tests.support.accounts import AccountsHarness
from tests.support.billing import PRICES, BillingHarness, VmHistory, assert_invoice_matches, expected_lines
from tests.support.bus_helpers import publish, wait_until
from tests.support.system import Upstreams

OCTOBER = "2026-10"


def test_the_month_close_still_invoices_a_locked_customers_usage(
    memory_bus: InMemoryBus, postgres_database: Database
) -> None:
    clock = ManualClock(datetime(2026, 10, 20, tzinfo=UTC))
    with Upstreams() as upstreams:
        billing = BillingHarness(upstreams, memory_bus, postgres_database, clock=clock).start()
        accounts = AccountsHarness(
            upstreams, memory_bus, postgres_database, clock=clock, services=("provisioner", "signup")
        ).start()
        accounts.other_relays.append(billing.runtime.relay)
        try:
            plan = billing.add_plan("S", 7, 5000)
            start = billing.period(OCTOBER).starts_at
            leaving = billing.add_customer("EUR", [VmHistory("web", plan, [(start + timedelta(days=2), None)])])
            member = accounts.adopt(leaving.client_id, leaving.solusvm_user_id, leaving.email)
            enrolled = UserProvisioned(
                signup_id=member.signup_id,
                email=member.email,
                whmcs_client_id=member.client_id,
                solusvm_user_id=member.user_id,
                enrolled_at=start,
            )
            publish(memory_bus, enrolled, producer="provisioner")
            wait_until(lambda: member.client_id in billing.enrolled_client_ids(), what="enrolled for billing")

            accounts.whmcs.update_client(member.client_id, status="Closed")
            accounts.sync(date(2026, 10, 20))
            assert accounts.solusvm_status(member) == "locked"

            clock.set(datetime(2026, 11, 1, 0, 20, tzinfo=UTC))
            billing.close(OCTOBER)
            billing.wait_settled(OCTOBER, 1)
            (invoice,) = billing.invoices_of(member.client_id)
            assert_invoice_matches(
                invoice,
                expected_lines(leaving, billing.period(OCTOBER), PRICES["EUR"], now=clock()),
                billing.period(OCTOBER),
            )
            # The provisioner heard of it too: it is the invoice that would suspend, were it unpaid.
            wait_until(lambda: invoice.id in _invoices_of(postgres_database, member.client_id), what="invoice recorded")
        finally:
            accounts.stop()
            billing.stop()


def test_the_scheduler_asks_for_one_accounts_sync_per_billing_day(sqlite_database: Database) -> None:
    deps = Dependencies(whmcs=None, solusvm=None, mailer=None)
    scheduler_service = service_builder("scheduler")(deps)
    scheduler_service.metadata.create_all(sqlite_database.engine)
    clock = ManualClock(datetime(2026, 11, 14, 22, 50, tzinfo=UTC))  # 23:50 on the 14th in Berlin
    settings = SchedulerSettings(billing_timezone="Europe/Berlin", scheduler_first_period="2026-11")
    scheduler = Scheduler(sqlite_database, scheduler_service.outbox, settings, clock)

    first = scheduler.sync_accounts()
    assert first is not None and first.day == date(2026, 11, 14)
    assert scheduler.sync_accounts() is None, "the same billing day asks once"
    clock.set(datetime(2026, 11, 14, 23, 10, tzinfo=UTC))  # 00:10 on the 15th in Berlin
    second = scheduler.sync_accounts()
    assert second is not None and second.day == date(2026, 11, 15) and second.event_id != first.event_id
    with sqlite_database.transaction() as session:
        rows = session.execute(
            select(scheduler_store.account_syncs.c.day, scheduler_store.account_syncs.c.trigger).order_by(
                scheduler_store.account_syncs.c.day
            )
        ).all()
        outbox = session.execute(select(scheduler_service.outbox.table.c.event_type)).scalars().all()
    assert [tuple(row) for row in rows] == [(date(2026, 11, 14), "schedule"), (date(2026, 11, 15), "schedule")]
    assert outbox == ["AccountsSyncRequested", "AccountsSyncRequested"]


def test_lifecycle_migrations_match_the_models_and_downgrade_cleanly(database: Database) -> None:
    deps = Dependencies(whmcs=None, solusvm=None, mailer=None)
    for name in ("provisioner", "signup", "scheduler"):
        service = service_builder(name)(deps)
        migrations.upgrade(database, service)
        assert migrations.pending_changes(database, service) == [], name
        tables = {t for t in inspect(database.engine).get_table_names() if t.startswith(f"{name}_")}
        assert tables == set(service.metadata.tables) | {f"{name}_alembic_version"}, name
        migrations.downgrade(database, service)
        left = {t for t in inspect(database.engine).get_table_names() if t.startswith(f"{name}_")}
        assert left <= {f"{name}_alembic_version"}, name


def _invoices_of(db: Database, client_id: int) -> set[int]:
    with db.transaction() as session:
        return invoice_ids_of(session, client_id)


def test_a_check_that_lost_a_race_cannot_commit_and_late_panel_news_cannot_roll_back(database: Database) -> None:
    """The two guards behind "no flapping" when deliveries overlap: the provisioner's row only takes a
    write based on the version it read; the panel only takes a higher revision."""
    deps = Dependencies(whmcs=None, solusvm=None, mailer=None)
    for name in ("provisioner", "signup"):
        service_builder(name)(deps).metadata.create_all(database.engine)
    now = datetime(2026, 11, 15, tzinfo=UTC)
    with database.transaction() as session:
        read = provisioner_store.ensure_account(session, 7)
    with database.transaction() as session:  # the faster check wins ...
        assert provisioner_store.mark_unconfirmed(session, 7, version=read.version)
        assert (
            provisioner_store.record_check(
                session,
                7,
                version=read.version + 1,
                now=now,
                changed=True,
                status="suspended",
                overdue_invoice_ids=(5,),
                reason="overdue",
                note=None,
                confirmed=True,
            )
            == 1
        )
    with database.transaction() as session:  # ... the slower one, which read the same version, cannot write
        assert not provisioner_store.mark_unconfirmed(session, 7, version=read.version)
        assert (
            provisioner_store.record_check(
                session,
                7,
                version=read.version,
                now=now,
                changed=True,
                status="active",
                overdue_invoice_ids=(),
                reason="paid",
                note=None,
                confirmed=True,
            )
            is None
        )
        account = provisioner_store.get_account(session, 7)
    assert account is not None and (account.status, account.revision, account.unconfirmed) == ("suspended", 1, False)

    signup_outbox = service_builder("signup")(deps).outbox
    reactivated = UserReactivated(
        whmcs_client_id=7,
        solusvm_user_id=9,
        email="a@example.com",
        previous_status="suspended",
        reactivated_at=now,
        standing=AccountStanding(status="active", revision=2),
    )
    suspended = UserSuspended(
        whmcs_client_id=7,
        solusvm_user_id=9,
        email="a@example.com",
        suspended_at=now,
        overdue_invoices=(OverdueInvoice(invoice_id=5, due_date=date(2026, 11, 1), total="1.00"),),
        standing=AccountStanding(status="suspended", overdue_invoice_ids=(5,), revision=1),
    )
    for event in (reactivated, suspended):  # the older news arrives last
        with database.transaction() as session:
            ctx = HandlerContext(
                session,
                new_envelope(event, producer="provisioner"),
                signup_outbox,
                database,
                lambda: now,
                "signup.record_account_standing",
            )
            record_account_standing(event, ctx)
    with database.transaction() as session:
        view = account_view(session, 7)
    assert view is not None and (view.status, view.overdue_invoice_ids, view.revision) == ("active", (), 2)
