"""Periods with live progress, a period's invoices, the replay dry-run, and an invoice with provenance."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response

from postpay.console.web import console_of, operator_session, page
from postpay.lookups.invoices import invoice_detail, list_invoices
from postpay.lookups.periods import closed_info, list_periods, summary
from postpay.operators.accounts import ConsoleSession
from postpay.ops.context import period_choice
from postpay.ops.dry_run import preview_period
from shared.periods import BillingPeriod

router = APIRouter()
Session = Annotated[ConsoleSession, Depends(operator_session)]


def _period(request: Request, key: str) -> BillingPeriod:
    console = console_of(request)
    try:
        return period_choice(console.db, key, console.timezone).period
    except ValueError as exc:
        raise HTTPException(404, f"{key} is not a billing month") from exc


@router.get("/")
async def periods(request: Request, session: Session) -> Response:
    console = console_of(request)
    rows = list_periods(console.db, console.timezone, console.now())
    running = any(row.state == "closed" and not row.status.complete for row in rows)
    return page(request, "periods.html", session, periods=rows, refresh=running)


@router.get("/periods/{key}")
async def period(request: Request, key: str, session: Session) -> Response:
    console = console_of(request)
    billing_period = _period(request, key)
    found = summary(console.db, billing_period, console.now(), closed_info(console.db, key))
    entries = list_invoices(console.db, period=key)
    return page(
        request,
        "period.html",
        session,
        period=found,
        entries=entries,
        refresh=found.state == "closed" and not found.status.complete,
    )


@router.get("/periods/{key}/dry-run")
async def dry_run(
    request: Request, key: str, session: Session, client: Annotated[int | None, Query(gt=0)] = None
) -> Response:
    console = console_of(request)
    billing_period = _period(request, key)
    now = console.now()
    if not billing_period.has_ended(now):
        raise HTTPException(400, f"{key} has not ended yet: there is nothing to replay")
    previews = list(
        preview_period(
            console.db,
            console.solusvm,
            console.whmcs,
            billing_period,
            console.invoicer_settings,
            now=now,
            client_ids=[client] if client else None,
        )
    )
    return page(request, "dry_run.html", session, period=billing_period, client=client, previews=previews)


@router.get("/invoices")
async def invoices(
    request: Request,
    session: Session,
    period: Annotated[str | None, Query(max_length=7)] = None,
    client: Annotated[int | None, Query(gt=0)] = None,
) -> Response:
    console = console_of(request)
    entries = list_invoices(console.db, period=period or None, client_id=client)
    return page(request, "invoices.html", session, entries=entries, period=period or "", client=client or "")


@router.get("/invoices/{invoice_id}")
async def invoice(request: Request, invoice_id: int, session: Session) -> Response:
    console = console_of(request)
    detail = invoice_detail(console.db, console.whmcs, invoice_id)
    if detail is None:
        raise HTTPException(404, f"postpay created no invoice #{invoice_id}")
    return page(request, "invoice.html", session, invoice=detail)
