"""Importing existing customers: every row is checked first, and then all are enrolled or none is.

A customer is billed for whole months (the collector fetches a month's usage as one window), so billing
starts at the first instant of a month: a date inside a month would bill that whole month, usage the
previous system may have billed already. Such a date is refused, not rounded either way.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from postpay.operators.audit import record_action
from services.provisioner import public as provisioner
from services.scheduler import public as scheduler
from services.signup import public as signup
from services.usage_collector import public as collector
from shared.bus.rabbit import CONNECTION_ERRORS
from shared.periods import BillingPeriod
from shared.upstream.errors import UpstreamError, UpstreamNotFound

_MONTH = re.compile(r"^(\d{4})-(\d{2})(?:-(\d{2}))?$")
COLUMNS = ("whmcs_client_id", "solusvm_user", "billed_from")


@dataclass(frozen=True)
class ImportRequest:
    row: int
    whmcs_client_id: int
    solusvm_user: str
    billed_from: str


@dataclass(frozen=True)
class Checked:
    request: ImportRequest
    period: BillingPeriod
    email: str
    name: str
    company: str
    solusvm_user_id: int


class ImportRefused(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def read_csv(path: Path) -> list[ImportRequest]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [column for column in COLUMNS if column not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path} lacks the column(s) {', '.join(missing)} (wanted: {', '.join(COLUMNS)})")
        requests = []
        for number, row in enumerate(reader, start=2):
            client = (row["whmcs_client_id"] or "").strip()
            if not client.isdigit() or int(client) == 0:
                raise ValueError(f"line {number}: whmcs_client_id {client!r} is not a client id")
            requests.append(
                ImportRequest(
                    number, int(client), (row["solusvm_user"] or "").strip(), (row["billed_from"] or "").strip()
                )
            )
    if not requests:
        raise ValueError(f"{path} has no rows")
    return requests


def billing_month(text: str, timezone: str) -> BillingPeriod:
    match = _MONTH.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a month (2026-11) or a month's first day (2026-11-01)")
    year, month, day = match.groups()
    if day is not None and day != "01":
        raise ValueError(
            f"{text} is inside a month: postpay bills whole months, so billing from it would charge all of "
            f"{year}-{month}, usage the previous system may have billed already; give the first month postpay "
            "bills (e.g. the next one)"
        )
    return BillingPeriod.parse(f"{year}-{month}", timezone)


def _check(context: Any, request: ImportRequest, timezone: str) -> Checked:
    where = f"row {request.row} (client {request.whmcs_client_id})"
    try:
        period = billing_month(request.billed_from, timezone)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    whmcs, solusvm = context.deps.whmcs, context.deps.solusvm
    client = whmcs.get_client(request.whmcs_client_id)
    if client is None:
        raise ValueError(f"{where}: WHMCS has no client {request.whmcs_client_id}")
    wanted = request.solusvm_user
    try:
        user = solusvm.get_user(int(wanted)) if wanted.isdigit() else solusvm.find_user_by_email(wanted)
    except UpstreamNotFound:
        user = None
    if user is None:
        raise ValueError(f"{where}: SolusVM 2 has no user {wanted!r}")
    with context.db.transaction() as session:
        if signup.signup_by_client(session, client.id) or signup.signup_by_email(session, client.email):
            raise ValueError(
                f"{where}: {client.email} is already a postpay customer (`postpay customers show {client.id}`)"
            )
        billed = collector.customer(session, client.id)
        owner = provisioner.customer_of_user(session, user.id)
    if billed is not None:
        raise ValueError(f"{where}: client {client.id} is already billed by postpay")
    if owner is not None:
        raise ValueError(f"{where}: SolusVM 2 user {user.id} belongs to WHMCS client {owner.whmcs_client_id}")
    name = f"{client.firstname} {client.lastname}".strip()
    return Checked(request, period, client.email, name, client.companyname, user.id)


def import_customers(
    context: Any, requests: list[ImportRequest], *, operator: str, reason: str, dry_run: bool = False
) -> list[str]:
    """Check every request, then enrol them all in one transaction; returns what to tell the operator."""
    timezone = context.scheduler_settings.billing_timezone
    checked: list[Checked] = []
    problems: list[str] = []
    for request in requests:
        try:
            checked.append(_check(context, request, timezone))
        except ValueError as exc:
            problems.append(str(exc))
        except UpstreamError as exc:
            problems.append(f"row {request.row}: could not check upstream: {type(exc).__name__}: {exc}")
    for label, key in (
        ("client", lambda c: c.request.whmcs_client_id),
        ("SolusVM 2 user", lambda c: c.solusvm_user_id),
    ):
        seen: dict[int, int] = {}
        for item in checked:
            if key(item) in seen:
                problems.append(f"row {item.request.row}: the same {label} {key(item)} as row {seen[key(item)]}")
            seen.setdefault(key(item), item.request.row)
    if problems:
        raise ImportRefused(problems)
    now = context.deps.clock()
    with context.db.transaction() as session:
        closed = scheduler.closed(session)
    told = [
        f"{'would import' if dry_run else 'imported'} client {c.request.whmcs_client_id} ({c.email}, SolusVM 2 "
        f"user {c.solusvm_user_id}), billed from {c.period.key}"
        for c in checked
    ]
    for item in checked:
        if item.period.key in closed:
            told.append(
                f"  {item.period.key} is closed already: bill client {item.request.whmcs_client_id} for it "
                f"with `postpay replay --period {item.period.key} --client {item.request.whmcs_client_id}`"
            )
    if dry_run:
        return told + ["dry run: nothing was imported"]
    with context.db.transaction() as session:
        for item in checked:
            signup.import_customer(
                session,
                email=item.email,
                name=item.name,
                company=item.company,
                whmcs_client_id=item.request.whmcs_client_id,
                solusvm_user_id=item.solusvm_user_id,
                enrolled_at=item.period.starts_at,
                operator=operator,
                note=reason,
                now=now,
            )
            record_action(
                session,
                actor=operator,
                action="customer.import",
                target=str(item.request.whmcs_client_id),
                reason=reason,
                now=now,
                detail=f"SolusVM 2 user {item.solusvm_user_id}, billed from {item.period.key}",
            )
    try:
        shipped = context.publish_outbox(signup.tables.outbox, ("signup", "provisioner", "usage_collector"))
    except CONNECTION_ERRORS:
        shipped = 0
    where = "published" if shipped else "queued in the signup outbox (the signup service's relay publishes them)"
    return told + [
        f"{len(checked)} CustomerImported event(s) {where}; the provisioner ties each SolusVM 2 user "
        "and the customer is enrolled (welcome email included) once it has"
    ]
