"""The provisioner's handlers.

    TermsAccepted                   → provision_user: find or create the SolusVM 2 user, UserProvisioned
    CustomerImported                → adopt_user: tie the existing SolusVM 2 user, UserProvisioned

and the customer's standing: keep each SolusVM 2 user in step with it.

    AccountsSyncRequested           → fan_out_checks: one CustomerStandingCheckRequested per customer
    CustomerStandingCheckRequested  → check_standing: read WHMCS, decide, set the SolusVM 2 user, record
    InvoiceCreated                  → record_invoice: remember which WHMCS invoices are postpay's
    UserSuspended, UserReactivated  → notify_customer: tell the customer why, and how to pay

Why a check is safe to repeat, to redeliver and to run during an outage:

1. nothing is decided unless WHMCS answered both reads; an error raises, the bus retries the check,
   and nothing has changed (so an outage never reads as "paid" and never reactivates anyone);
2. the decision compares the target with what is on record, so a second check of the same standing
   finds nothing to do: one suspension, however many ticks run;
3. before SolusVM 2 is written, the row is marked ``unconfirmed`` in its own transaction: when the write
   is lost (the PATCH timed out, the process died), the next check sends the target again even if the
   standing has not changed;
4. every write of the row compares the ``version`` read at the start: two checks of one customer
   racing each other cannot both commit; the loser raises and is retried from a fresh read.
"""

from __future__ import annotations

from typing import Any

from services.provisioner import store
from services.provisioner.emails import reactivation_email, suspension_email
from services.provisioner.passwords import random_password
from services.provisioner.settings import ProvisionerSettings
from services.provisioner.standing import Decision, Standing
from services.provisioner.standing_check import evaluate, today_in
from services.provisioner.store import Customer
from shared.bus.handler_context import DatabaseContext, HandlerContext
from shared.errors import PermanentError
from shared.events.accounts import (
    AccountsSyncRequested,
    AccountStanding,
    CustomerEmailChanged,
    CustomerStandingCheckRequested,
    InvoiceOverdue,
    InvoicePaid,
    OverdueInvoice,
    UserLocked,
    UserReactivated,
    UserSuspended,
)
from shared.events.base import Event
from shared.events.billing import InvoiceCreated
from shared.events.enrollment import TermsAccepted, UserProvisioned
from shared.events.imports import CustomerImported
from shared.ports import Mailer, SolusVM, Whmcs
from shared.upstream.errors import UpstreamNotFound, UpstreamValidationError


def provision_user(
    event: TermsAccepted, ctx: HandlerContext, *, solusvm: SolusVM, settings: ProvisionerSettings
) -> None:
    """Find or create the SolusVM 2 user with exactly this email, tie it to the WHMCS client, and say so.

    Safe to repeat at any point: the lookup by email finds a user a lost earlier attempt created, and a
    customer already on record is announced again with the same ids.
    """
    with ctx.read_first() as session:
        known = store.get_customer(session, event.whmcs_client_id)
    if known is None:
        user = solusvm.find_or_create_user(
            event.email,
            random_password(),
            billing_user_id=event.whmcs_client_id,
            limit_group_id=settings.solusvm_limit_group_id,
            roles=list(settings.solusvm_role_ids) or None,
        )
        with ctx.read_first() as session:
            owner = store.customer_of_user(session, user.id)
        if owner is not None:
            raise PermanentError(
                f"SolusVM 2 user {user.id} ({event.email}) is already provisioned for WHMCS client "
                f"{owner.whmcs_client_id}, not {event.whmcs_client_id}"
            )
        if user.billing_user_id != event.whmcs_client_id:
            ctx.log.warning(
                "existing SolusVM 2 user had another billing id; tying it to this WHMCS client",
                solusvm_user_id=user.id,
                previous_billing_user_id=user.billing_user_id,
                whmcs_client_id=event.whmcs_client_id,
            )
            solusvm.patch_user(user.id, billing_user_id=event.whmcs_client_id)
        known = Customer(event.whmcs_client_id, user.id, event.email, event.signup_id, ctx.now())
        store.add_customer(ctx.session, known)
        ctx.log.info(
            "SolusVM 2 user ready", whmcs_client_id=known.whmcs_client_id, solusvm_user_id=known.solusvm_user_id
        )
    ctx.emit(
        UserProvisioned(
            signup_id=event.signup_id,
            email=event.email,
            whmcs_client_id=known.whmcs_client_id,
            solusvm_user_id=known.solusvm_user_id,
            enrolled_at=known.provisioned_at,
        ),
        key="provisioned",
    )


def adopt_user(event: CustomerImported, ctx: HandlerContext, *, solusvm: SolusVM) -> None:
    """CustomerImported → the existing SolusVM 2 user tied to the WHMCS client → UserProvisioned.

    An imported customer already has a SolusVM 2 user: nothing is created. The user must exist and be
    nobody else's; its billing id is set to the client when it differs, as a new customer's would be. The
    customer is announced enrolled at the date the operator gave, so the usage collector bills from there.
    """
    with ctx.read_first() as session:
        known = store.get_customer(session, event.whmcs_client_id)
        owner = store.customer_of_user(session, event.solusvm_user_id)
    if known is not None and known.solusvm_user_id != event.solusvm_user_id:
        raise PermanentError(
            f"WHMCS client {event.whmcs_client_id} is already enrolled with SolusVM 2 user "
            f"{known.solusvm_user_id}, not {event.solusvm_user_id}"
        )
    if owner is not None and owner.whmcs_client_id != event.whmcs_client_id:
        raise PermanentError(
            f"SolusVM 2 user {event.solusvm_user_id} is already enrolled for WHMCS client "
            f"{owner.whmcs_client_id}, not {event.whmcs_client_id}"
        )
    if known is None:
        try:
            user = solusvm.get_user(event.solusvm_user_id)
        except UpstreamNotFound as exc:
            raise PermanentError(f"SolusVM 2 has no user {event.solusvm_user_id}") from exc
        if user.billing_user_id != event.whmcs_client_id:
            ctx.log.warning(
                "imported SolusVM 2 user had another billing id; tying it to this WHMCS client",
                solusvm_user_id=user.id,
                previous_billing_user_id=user.billing_user_id,
                whmcs_client_id=event.whmcs_client_id,
            )
            solusvm.patch_user(user.id, billing_user_id=event.whmcs_client_id)
        known = Customer(event.whmcs_client_id, user.id, user.email, event.signup_id, event.enrolled_at)
        store.add_customer(ctx.session, known)
        ctx.log.info(
            "imported customer tied to its SolusVM 2 user",
            whmcs_client_id=known.whmcs_client_id,
            solusvm_user_id=known.solusvm_user_id,
            imported_by=event.imported_by,
        )
    ctx.emit(
        UserProvisioned(
            signup_id=event.signup_id,
            email=event.email,
            whmcs_client_id=known.whmcs_client_id,
            solusvm_user_id=known.solusvm_user_id,
            enrolled_at=known.provisioned_at,
        ),
        key="provisioned",
    )


# The customer's standing.


class ConcurrentCheck(Exception):
    """Another check of the same customer wrote first; this one is retried from a fresh read."""


def fan_out_checks(event: AccountsSyncRequested, ctx: HandlerContext, *, chunk_size: int) -> None:
    """One standing check per provisioned customer, a chunk per transaction (flat memory however many
    customers). Each chunk commits with the resume point, so a redelivery goes on after the last chunk;
    the checks' ids follow from this sync and the client id, so a repeated chunk is deduplicated."""
    with ctx.checkpoint() as session:
        after, finished = store.start_sync_fanout(session, ctx.event_id, event.as_of, ctx.now())
    requested = 0
    while not finished:
        with ctx.checkpoint() as session:
            only = list(event.only_client_ids) if event.only_client_ids is not None else None
            page = store.customers_page(session, after=after, limit=chunk_size, only=only)
            checks: list[tuple[Event, str | None]] = [
                (
                    CustomerStandingCheckRequested(
                        whmcs_client_id=customer.whmcs_client_id,
                        solusvm_user_id=customer.solusvm_user_id,
                        as_of=event.as_of,
                        timezone=event.timezone,
                    ),
                    str(customer.whmcs_client_id),
                )
                for customer in page
            ]
            ctx.emit_all(checks, session=session)
            finished = len(page) < chunk_size
            after = page[-1].whmcs_client_id if page else after
            store.advance_sync_fanout(
                session, ctx.event_id, last_client_id=after, added=len(page), finished=finished, now=ctx.now()
            )
            requested += len(page)
    ctx.log.info("accounts sync fanned out", trigger=event.trigger, requested=requested)


def record_invoice(event: InvoiceCreated, ctx: DatabaseContext) -> None:
    store.record_invoice(
        ctx.session,
        invoice_id=event.invoice_id,
        client_id=event.whmcs_client_id,
        period=event.period,
        due_date=event.due_date,
        now=ctx.now(),
    )


def check_standing(
    event: CustomerStandingCheckRequested,
    ctx: HandlerContext,
    *,
    whmcs: Whmcs,
    solusvm: SolusVM,
    settings: ProvisionerSettings,
) -> None:
    client_id = event.whmcs_client_id
    with ctx.read_first() as session:
        customer = store.get_customer(session, client_id)
        if customer is None:
            raise PermanentError(f"WHMCS client {client_id} was never provisioned here")
        account = store.ensure_account(session, client_id)
        known = store.invoice_ids_of(session, client_id)
    standing, decision = evaluate(whmcs, customer, account, known, settings, today_in(event.as_of, event.timezone))
    version, note, email_applied = account.version, None, decision.new_email is not None
    if decision.writes_upstream:
        with ctx.record_now() as session:
            if not store.mark_unconfirmed(session, client_id, version=version):
                raise ConcurrentCheck(f"client {client_id}: another check changed the account meanwhile")
        version += 1
        note = _apply(solusvm, customer.solusvm_user_id, decision, standing)
        email_applied = email_applied and note is None
    changed = decision.status_changed or bool(decision.newly_overdue or decision.no_longer_overdue) or email_applied
    revision = store.record_check(
        ctx.session,
        client_id,
        version=version,
        now=ctx.now(),
        changed=changed,
        status=decision.status,
        overdue_invoice_ids=decision.overdue_ids,
        reason=decision.reason,
        note=note,
        confirmed=decision.writes_upstream,
    )
    if revision is None:
        raise ConcurrentCheck(f"client {client_id}: another check recorded the account meanwhile")
    if email_applied:
        store.set_customer_email(ctx.session, client_id, decision.new_email or customer.email)
    if changed:
        ctx.emit_all(_events(event, ctx, decision, standing, revision, email_applied))
        ctx.log.info(
            "account changed",
            whmcs_client_id=client_id,
            status=decision.status,
            previous_status=decision.previous_status,
            reason=decision.reason,
            revision=revision,
        )


def _apply(solusvm: SolusVM, user_id: int, decision: Decision, standing: Standing) -> str | None:
    """Set the user's status and email; returns a note when the email could not be set (taken by
    another SolusVM 2 user: the status still changes, and the email is tried again every check)."""
    try:
        if decision.status_changed or decision.reassert:
            solusvm.set_status(user_id, decision.status)
        email = decision.new_email or (standing.email if decision.reassert else None)
        if email:
            try:
                solusvm.patch_user(user_id, email=email)
            except UpstreamValidationError as exc:
                if "email" not in exc.errors:
                    raise
                return f"SolusVM 2 refused the email from WHMCS: {'; '.join(exc.errors['email'])[:300]}"
    except UpstreamNotFound as exc:
        raise PermanentError(f"SolusVM 2 has no user {user_id} any more") from exc
    return None


def _events(
    event: CustomerStandingCheckRequested,
    ctx: HandlerContext,
    decision: Decision,
    standing: Standing,
    revision: int,
    email_applied: bool,
) -> list[tuple[Event, str | None]]:
    """What changed, each event carrying the standing after the change."""
    client_id, user_id, now = event.whmcs_client_id, event.solusvm_user_id, ctx.now()
    after = AccountStanding(status=decision.status, overdue_invoice_ids=decision.overdue_ids, revision=revision)
    today = today_in(event.as_of, event.timezone)
    events: list[tuple[Event, str | None]] = [
        (
            InvoiceOverdue(
                whmcs_client_id=client_id,
                invoice_id=invoice.invoice_id,
                due_date=invoice.due_date,
                days_overdue=invoice.days_overdue(today),
                standing=after,
            ),
            f"overdue-{invoice.invoice_id}",
        )
        for invoice in decision.newly_overdue
        if invoice.due_date is not None
    ]
    events += [
        (
            InvoicePaid(whmcs_client_id=client_id, invoice_id=invoice_id, status=status, standing=after),
            f"settled-{invoice_id}",
        )
        for invoice_id, status in decision.no_longer_overdue
    ]
    if decision.status_changed:
        events.append((_status_event(decision, standing, client_id, user_id, now, after), "status"))
    if email_applied and decision.new_email:
        events.append(
            (
                CustomerEmailChanged(
                    whmcs_client_id=client_id,
                    solusvm_user_id=user_id,
                    email=decision.new_email,
                    previous_email=decision.previous_email,
                    standing=after,
                ),
                "email",
            )
        )
    return events


def _status_event(
    decision: Decision, standing: Standing, client_id: int, user_id: int, now: Any, after: AccountStanding
) -> Event:
    if decision.status == "suspended":
        overdue = tuple(
            OverdueInvoice(
                invoice_id=invoice.invoice_id,
                due_date=invoice.due_date,
                total=invoice.total,
                currency=invoice.currency[:3],
            )
            for invoice in decision.overdue
            if invoice.due_date is not None
        )
        return UserSuspended(
            whmcs_client_id=client_id,
            solusvm_user_id=user_id,
            email=standing.email,
            overdue_invoices=overdue,
            suspended_at=now,
            standing=after,
        )
    if decision.status == "locked":
        return UserLocked(
            whmcs_client_id=client_id,
            solusvm_user_id=user_id,
            reason=decision.reason[:200],
            locked_at=now,
            standing=after,
        )
    assert decision.previous_status != "active"
    return UserReactivated(
        whmcs_client_id=client_id,
        solusvm_user_id=user_id,
        email=standing.email,
        previous_status=decision.previous_status,
        settled_invoice_ids=tuple(invoice_id for invoice_id, _ in decision.no_longer_overdue),
        reactivated_at=now,
        standing=after,
    )


def notify_customer(
    event: UserSuspended | UserReactivated, ctx: HandlerContext, *, mailer: Mailer, settings: ProvisionerSettings
) -> None:
    """Email the customer (once per event: the message id follows from it, and the inbox skips repeats)."""
    if isinstance(event, UserSuspended):
        email = suspension_email(
            to=event.email,
            invoices=event.overdue_invoices,
            grace_days=settings.accounts_grace_days,
            invoice_url=settings.invoice_url,
            brand=settings.brand,
        )
    else:
        email = reactivation_email(to=event.email, settled_invoice_ids=event.settled_invoice_ids, brand=settings.brand)
    mailer.send(email, idempotency_key=f"{event.event_type.lower()}-{ctx.event_id}")
    ctx.log.info("customer told", event_type=event.event_type, whmcs_client_id=event.whmcs_client_id)
