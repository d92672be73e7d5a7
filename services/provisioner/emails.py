"""The emails telling customers of a change in their standing, rendered from templates. Pure: no sending here."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from shared.branding import Brand
from shared.events.accounts import OverdueInvoice
from shared.mail import Email
from shared.money import format_money

_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent / "templates" / "emails"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


@dataclass(frozen=True)
class _Invoice:
    invoice_id: int
    amount: str
    due_date: str
    url: str


def _render(template: str, **values: object) -> tuple[str, str]:
    text = _TEMPLATES.get_template(f"{template}.txt").render(**values)
    return text, _TEMPLATES.get_template(f"{template}.html").render(**values)


def suspension_email(
    *, to: str, invoices: Sequence[OverdueInvoice], grace_days: int, invoice_url: Callable[[int], str], brand: Brand
) -> Email:
    """Why the account is suspended (which invoices) and how to pay (a link to each)."""
    rows = [
        _Invoice(
            invoice.invoice_id,
            f"{invoice.currency} {format_money(invoice.total, invoice.currency or 'XXX')}".strip(),
            invoice.due_date.isoformat(),
            invoice_url(invoice.invoice_id),
        )
        for invoice in invoices
    ]
    text, html = _render("suspended", invoices=rows, grace_days=grace_days, brand=brand)
    numbers = ", ".join(f"#{row.invoice_id}" for row in rows)
    return Email(
        to=to,
        subject=f"Your SolusVM 2 account with {brand.name} is suspended: invoice {numbers} is unpaid",
        text=text,
        html=html,
    )


def reactivation_email(*, to: str, settled_invoice_ids: Sequence[int], brand: Brand) -> Email:
    settled = ", ".join(f"invoice #{invoice_id}" for invoice_id in settled_invoice_ids)
    text, html = _render("reactivated", settled=settled, brand=brand)
    return Email(to=to, subject=f"Your SolusVM 2 account with {brand.name} is active again", text=text, html=html)
