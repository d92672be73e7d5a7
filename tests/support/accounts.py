"""The account lifecycle inside a test: customers enrolled in both simulators and postpay, invoices in
WHMCS, the daily sync ticked by hand, and what happened read back from every side.

    with Upstreams() as upstreams:
        harness = AccountsHarness(upstreams, bus, db).start()
        ada = harness.add_customer()
        harness.add_invoice(ada, due=date(2026, 11, 1))
        harness.sync(date(2026, 11, 20))
        assert harness.solusvm_status(ada) == "suspended"

Customers are enrolled as the journey leaves them (a provisioner customer row and an enrolled signup
row), without the web journey: these tests are about what happens afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update

from postpay.bootstrap import service_builder
from services.provisioner import store as provisioner_store
from services.provisioner.settings import ProvisionerSettings
from services.scheduler.closing import Scheduler
from services.scheduler.settings import SchedulerSettings
from services.scheduler.syncing import request_accounts_sync
from services.signup import schema as signup_schema
from services.signup import store as signup_store
from services.signup.accounts import AccountView, account_of
from shared.clock import ManualClock
from shared.db import Database
from shared.runtime import Runtime
from shared.upstream.whmcs_models import InvoiceLine
from simulators.solusvm.seeding import seed as seed_solusvm
from simulators.whmcs.state import Client as WhmcsClientRecord
from tests.support.bus_helpers import metric, wait_until
from tests.support.enrollment import signup_settings
from tests.support.system import Upstreams

LIFECYCLE_SERVICES = ("provisioner", "signup", "scheduler")
CHECK_HANDLER = "provisioner.check_standing"
INVOICE_URL = "https://billing.example.com/viewinvoice.php?id={invoice_id}"
LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


def checks_done() -> float:
    """Standing checks completed in this process so far (metrics are process-wide: use differences)."""
    return metric("postpay_messages_handled_total", handler=CHECK_HANDLER, outcome="done")


@dataclass(frozen=True)
class Member:
    client_id: int
    user_id: int
    email: str
    signup_id: uuid.UUID | None = None


class AccountsHarness:
    def __init__(
        self,
        upstreams: Upstreams,
        bus: Any,
        db: Database,
        *,
        provisioner: ProvisionerSettings | None = None,
        services: Sequence[str] = LIFECYCLE_SERVICES,
        extra_settings: Sequence[Any] = (),
        clock: ManualClock | None = None,
    ) -> None:
        self.upstreams = upstreams
        self.bus = bus
        self.db = db
        self.clock = clock or ManualClock(datetime(2026, 11, 1, tzinfo=UTC))
        self.settings = provisioner or ProvisionerSettings(accounts_grace_days=14, accounts_invoice_url=INVOICE_URL)
        self.scheduler_settings = SchedulerSettings(scheduler_first_period="2020-01")
        overrides = [self.settings, self.scheduler_settings, signup_settings(), *extra_settings]
        self.deps = upstreams.dependencies(clock=self.clock, overrides=overrides)
        self.deps.db = db
        self.services = {name: service_builder(name)(self.deps) for name in services}
        self.runtime = Runtime(bus, db, list(self.services.values()), relay_poll_seconds=0.05, clock=self.clock)
        self.runtime.create_tables()
        # Without the scheduler in this runtime, another one (a billing harness's) relays its outbox.
        self.scheduler_outbox = service_builder("scheduler")(self.deps).outbox
        self.scheduler = Scheduler(db, self.scheduler_outbox, self.scheduler_settings, self.clock)
        self.whmcs = upstreams.whmcs_client()
        self.members: list[Member] = []
        self.other_relays: list[Any] = []

    def start(self) -> AccountsHarness:
        self.runtime.start(background=False)
        connected = getattr(self.runtime.consumer, "connected", None)
        if connected is not None:
            assert connected.wait(15), "consumer did not connect"
        return self

    def stop(self) -> None:
        self.runtime.stop()

    # -- customers and invoices ----------------------------------------------------------------
    def add_customer(self) -> Member:
        """A WHMCS client, its SolusVM 2 user, and both records postpay keeps of an enrolled customer."""
        email = f"acct-{uuid.uuid4().hex[:10]}@example.com"
        state = self.upstreams.whmcs.state
        with state.lock:
            client = WhmcsClientRecord(
                id=state.next_id("client"),
                uuid=str(uuid.uuid4()),
                owner_user_id=0,
                firstname="Test",
                lastname="Customer",
                email=email,
            )
            state.add_client(client)
        (user_id,) = seed_solusvm(
            self.upstreams.solusvm_state, {"users": [{"email": email, "billing_user_id": client.id}]}, LONG_AGO
        )["users"]
        return self.adopt(client.id, user_id, email)

    def adopt(self, client_id: int, user_id: int, email: str) -> Member:
        """Record an existing WHMCS client and SolusVM 2 user as enrolled (provisioner and signup)."""
        signup_id = uuid.uuid4()
        with self.db.transaction() as session:
            customer = provisioner_store.Customer(client_id, user_id, email, signup_id, LONG_AGO)
            provisioner_store.add_customer(session, customer)
            signup_store.insert_signup(
                session,
                signup_id=signup_id,
                email=email,
                email_key=email,
                name="Test Customer",
                company="",
                encrypted_password="",
                registration_ip=None,
                now=LONG_AGO,
            )
            session.execute(
                update(signup_schema.signups)
                .where(signup_schema.signups.c.id == signup_id)
                .values(
                    stage=signup_schema.Stage.ENROLLED.value,
                    whmcs_client_id=client_id,
                    solusvm_user_id=user_id,
                    encrypted_password=None,
                    enrolled_at=LONG_AGO,
                    welcome_sent_at=LONG_AGO,
                )
            )
        member = Member(client_id, user_id, email, signup_id)
        self.members.append(member)
        return member

    def add_invoice(self, member: Member, *, due: date, postpay: bool = True, total: str = "12.34") -> int:
        """An unpaid WHMCS invoice; a postpay one carries the invoicer's run key in its notes."""
        period = (due.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
        notes = (
            f"SolusVM 2 usage for {period}. postpay run key: [postpay:{member.client_id}:{period}]"
            if postpay
            else "Domain renewal"
        )
        return int(
            self.whmcs.create_invoice(
                member.client_id,
                [InvoiceLine("usage", Decimal(total))],
                date=due - timedelta(days=14),
                due_date=due,
                notes=notes,
                send_invoice=False,
                payment_method=None,
            )
        )

    def pay(self, invoice_id: int) -> None:
        self.whmcs.add_invoice_payment(invoice_id, transid=f"t-{invoice_id}", gateway="mailin", date=self.clock())

    # -- the daily sync --------------------------------------------------------------------------
    def sync(self, day: date, *, wait: bool = True, manual: bool = False) -> datetime:
        """The tick of ``day`` (00:20 UTC), or an operator's sync; waits until each customer's check of
        this sync is done and its news reached the panel."""
        moment = datetime.combine(day, time(0, 20), tzinfo=UTC)
        self.clock.set(moment)
        done_before = checks_done()
        if manual:
            with self.db.transaction() as session:
                requested = request_accounts_sync(
                    session, self.scheduler_outbox, timezone="UTC", now=moment, trigger="manual"
                )
        else:
            requested = self.scheduler.sync_accounts()
        self.runtime.relay.wake()
        for relay in self.other_relays:
            relay.wake()
        if wait and requested is not None:
            wait_until(
                lambda: checks_done() >= done_before + len(self.members),
                timeout=30,
                what=f"{len(self.members)} checks of the sync of {day}",
            )
            self.wait_panel()
        return moment

    def wait_checked(self, moment: datetime, members: Sequence[Member] | None = None, timeout: float = 30) -> None:
        wanted = {m.client_id for m in (members or self.members)}

        def checked() -> bool:
            with self.db.transaction() as session:
                rows = session.execute(
                    select(provisioner_store.accounts.c.whmcs_client_id).where(
                        provisioner_store.accounts.c.checked_at >= moment
                    )
                ).scalars()
                return wanted <= set(rows)

        wait_until(checked, timeout=timeout, what=f"every customer checked as of {moment}")
        self.wait_panel(members, timeout)

    def wait_panel(self, members: Sequence[Member] | None = None, timeout: float = 30) -> None:
        """Until what the checks announced has reached the panel."""
        wait_until(
            lambda: all(self.panel_revision(m) == self.account(m).revision for m in (members or self.members)),
            timeout=timeout,
            what="the panel caught up",
        )

    # -- reading back ----------------------------------------------------------------------------
    def account(self, member: Member) -> provisioner_store.Account:
        with self.db.transaction() as session:
            account = provisioner_store.get_account(session, member.client_id)
        assert account is not None, f"client {member.client_id} was never checked"
        return account

    def panel(self, member: Member) -> AccountView | None:
        return account_of(self.db, member.client_id)

    def panel_revision(self, member: Member) -> int:
        view = self.panel(member)
        return view.revision if view is not None else 0

    def solusvm_user(self, member: Member) -> Any:
        with self.upstreams.solusvm_state.lock:
            return self.upstreams.solusvm_state.users[member.user_id]

    def solusvm_status(self, member: Member) -> str:
        return str(self.solusvm_user(member).status)

    def status_history(self, member: Member) -> list[tuple[str, str]]:
        return [
            (change["from"], change["to"]) for change in self.upstreams.solusvm_state.status_history(member.user_id)
        ]

    def emails_to(self, member: Member, subject: str) -> list[Any]:
        return [m for m in self.upstreams.smtp.messages if m["To"] == member.email and subject in str(m["Subject"])]

    def wait_emails(self, member: Member, subject: str, count: int = 1, timeout: float = 20) -> list[Any]:
        """At least ``count`` emails to the member about ``subject`` (they are sent after the check commits)."""

        def enough() -> list[Any] | None:
            found = self.emails_to(member, subject)
            return found if len(found) >= count else None

        what = f"{count} '{subject}' email(s) to {member.email}"
        return wait_until(enough, timeout=timeout, what=what)  # type: ignore[no-any-return]
