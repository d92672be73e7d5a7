"""The emails of the journey, rendered from templates. Pure: no sending here."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from shared.branding import Brand
from shared.mail import Email

_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent / "templates" / "emails"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


def _render(template: str, **values: object) -> tuple[str, str]:
    text = _TEMPLATES.get_template(f"{template}.txt").render(**values)
    return text, _TEMPLATES.get_template(f"{template}.html").render(**values)


def verification_email(*, to: str, name: str, link: str, expires_at: datetime, brand: Brand) -> Email:
    expires = expires_at.strftime("%Y-%m-%d %H:%M UTC")
    text, html = _render("verification", name=name, link=link, expires=expires, brand=brand)
    return Email(to=to, subject=f"Confirm your email address for {brand.name}", text=text, html=html)


def welcome_email(
    *, to: str, name: str, client_area_url: str, brand: Brand, currency: str | None = None, chosen: str | None = None
) -> Email:
    """``currency``: the WHMCS client's, which invoices are in; said to differ from ``chosen`` when it does
    (an existing client linked by email keeps its own)."""
    text, html = _render(
        "welcome", name=name, client_area_url=client_area_url, brand=brand, currency=currency, chosen=chosen
    )
    return Email(to=to, subject=f"Welcome to SolusVM 2 with {brand.name}", text=text, html=html)


def already_enrolled_email(*, to: str, name: str, client_area_url: str, brand: Brand) -> Email:
    """For a registration or a link asked for an address that is enrolled already: how to log in."""
    text, html = _render("already_enrolled", name=name, client_area_url=client_area_url, brand=brand)
    return Email(to=to, subject=f"You already have a SolusVM 2 account with {brand.name}", text=text, html=html)
