"""Customers: the list with its filters, and a customer's page (everything `customers show` gives)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response

from postpay.console.web import console_of, operator_session, page
from postpay.lookups.customers import STAGES, STANDINGS, NoSuchCustomer, customer_detail, list_customers
from postpay.operators.accounts import ConsoleSession

router = APIRouter()
Session = Annotated[ConsoleSession, Depends(operator_session)]


@router.get("/customers")
async def customers(
    request: Request,
    session: Session,
    status: Annotated[str | None, Query(max_length=32)] = None,
    search: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    console = console_of(request)
    status = status or None
    if status is not None and status not in STAGES + STANDINGS:
        raise HTTPException(400, "Unknown status.")
    rows = list_customers(console.db, status=status, search=search or None)
    return page(
        request,
        "customers.html",
        session,
        customers=rows,
        status=status or "",
        search=search or "",
        statuses=STAGES + STANDINGS,
    )


@router.get("/customers/{ident}")
async def customer(request: Request, ident: str, session: Session) -> Response:
    console = console_of(request)
    try:
        detail = customer_detail(
            console.db,
            ident[:254],
            whmcs=console.whmcs,
            solusvm=console.solusvm,
            now=console.now(),
            timezone=console.timezone,
        )
    except NoSuchCustomer as exc:
        raise HTTPException(404, str(exc)) from exc
    return page(request, "customer.html", session, customer=detail)
