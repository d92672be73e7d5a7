"""A customer as the support desk needs it: enrolment stage, consents, WHMCS client, SolusVM 2 user and
its state, standing, invoices, usage to date. Found by WHMCS client id or email."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.invoicer import public as invoicer
from services.provisioner import public as provisioner
from services.signup import public as signup
from services.usage_collector import public as collector
from shared.db import Database
from shared.periods import BillingPeriod
from shared.upstream.errors import UpstreamError

STAGES = tuple(stage.value for stage in signup.Stage)
STANDINGS = ("active", "suspended", "locked")


@dataclass(frozen=True)
class CustomerRow:
    email: str
    name: str
    stage: str
    whmcs_client_id: int | None
    solusvm_user_id: int | None
    standing: str | None
    created_at: datetime


@dataclass(frozen=True)
class UsageToDate:
    period: str
    since: datetime
    until: datetime
    total_tokens: int
    vms: list[dict[str, Any]]


@dataclass
class CustomerDetail:
    whmcs_client_id: int | None
    signup: signup.Signup | None
    consents: list[signup.Consent] = field(default_factory=list)
    enrolled_for_billing_at: datetime | None = None
    solusvm_user_id: int | None = None
    account: provisioner.Account | None = None
    invoices: list[invoicer.LedgerEntry] = field(default_factory=list)
    collections: list[collector.Collection] = field(default_factory=list)
    whmcs_client: dict[str, Any] | None = None
    solusvm_user: dict[str, Any] | None = None
    usage_to_date: UsageToDate | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def email(self) -> str | None:
        return self.signup.email if self.signup else None

    @property
    def stage(self) -> str:
        if self.signup is not None:
            return self.signup.stage.value
        return "enrolled (no signup on record)" if self.enrolled_for_billing_at else "unknown"


class NoSuchCustomer(LookupError):
    pass


def list_customers(
    db: Database, *, status: str | None = None, search: str | None = None, limit: int = 200
) -> list[CustomerRow]:
    """Signups (every customer who registered or was imported), by email; ``status`` is a stage or a
    standing (active, suspended, locked)."""
    if status is not None and status not in STAGES + STANDINGS:
        raise ValueError(f"status must be one of {', '.join(STAGES + STANDINGS)}")
    stage = signup.Stage(status) if status in STAGES else None
    rows: list[CustomerRow] = []
    after = ""
    with db.transaction() as session:
        while len(rows) < limit:
            page = signup.signups_page(session, after=after, limit=200, stage=stage, search=search)
            for found in page:
                account = provisioner.account(session, found.whmcs_client_id) if found.whmcs_client_id else None
                standing = account.status if account else None
                if status in STANDINGS and standing != status:
                    continue
                rows.append(
                    CustomerRow(
                        found.email,
                        found.name,
                        found.stage.value,
                        found.whmcs_client_id,
                        found.solusvm_user_id,
                        standing,
                        found.created_at,
                    )
                )
            if len(page) < 200:
                break
            after = signup.email_key(page[-1].email)
    return rows[:limit]


def customer_detail(
    db: Database, ident: str, *, whmcs: Any = None, solusvm: Any = None, now: datetime, timezone: str = "UTC"
) -> CustomerDetail:
    """Everything on record; with ``whmcs`` / ``solusvm`` clients, their live view and the usage so far."""
    with db.transaction() as session:
        found = _find_signup(session, ident)
        client_id = found.whmcs_client_id if found else (int(ident) if ident.strip().isdigit() else None)
        if found is None and client_id is None:
            raise NoSuchCustomer(f"no customer with email {ident}")
        detail = CustomerDetail(client_id, found)
        if client_id is not None:
            detail.consents = signup.consents_of(session, whmcs_client_id=client_id)
            billed = collector.customer(session, client_id)
            provisioned = provisioner.customer(session, client_id)
            detail.enrolled_for_billing_at = billed.enrolled_at if billed else None
            detail.solusvm_user_id = (
                (billed.solusvm_user_id if billed else None)
                or (provisioned.solusvm_user_id if provisioned else None)
                or (found.solusvm_user_id if found else None)
            )
            detail.account = provisioner.account(session, client_id)
            detail.invoices = invoicer.entries_of_client(session, client_id)
            detail.collections = collector.collections_of_client(session, client_id)
        elif found is not None:
            detail.consents = signup.consents_of(session, email=found.email)
    if found is None and detail.enrolled_for_billing_at is None and not detail.invoices and detail.account is None:
        raise NoSuchCustomer(f"no customer with WHMCS client id {ident}")
    if whmcs is not None and client_id is not None:
        _whmcs_view(detail, whmcs, client_id)
    if solusvm is not None and detail.solusvm_user_id is not None:
        _solusvm_view(detail, solusvm, detail.solusvm_user_id, now, timezone)
    return detail


def _find_signup(session: Any, ident: str) -> signup.Signup | None:
    text = ident.strip()
    if text.isdigit():
        return signup.signup_by_client(session, int(text))
    if "@" in text:
        return signup.signup_by_email(session, text)
    raise NoSuchCustomer(f"{ident!r} is neither a WHMCS client id nor an email address")


def _whmcs_view(detail: CustomerDetail, whmcs: Any, client_id: int) -> None:
    try:
        client = whmcs.get_client(client_id)
    except UpstreamError as exc:
        detail.problems.append(f"WHMCS did not answer: {type(exc).__name__}: {exc}")
        return
    if client is None:
        detail.problems.append(f"WHMCS has no client {client_id}")
        return
    detail.whmcs_client = {
        "id": client.id,
        "email": client.email,
        "name": f"{client.firstname} {client.lastname}".strip(),
        "company": client.companyname,
        "status": client.status,
        "currency": client.currency_code,
    }


def _solusvm_view(detail: CustomerDetail, solusvm: Any, user_id: int, now: datetime, timezone: str) -> None:
    try:
        user = solusvm.get_user(user_id)
        period = BillingPeriod.containing(now, timezone)
        usage = solusvm.period_usage(user_id, period.starts_at, now)
    except UpstreamError as exc:
        detail.problems.append(f"SolusVM 2 did not answer: {type(exc).__name__}: {exc}")
        return
    detail.solusvm_user = {
        "id": user.id,
        "email": user.email,
        "status": user.status,
        "billing_user_id": user.billing_user_id,
    }
    vms = [
        {"server_id": vm.server_id, "name": vm.name, "plan": vm.plan_name, "hours": vm.hours, "tokens": vm.tokens}
        for vm in collector.vm_usages(usage)
    ]
    detail.usage_to_date = UsageToDate(period.key, period.starts_at, now, usage.total_tokens, vms)
