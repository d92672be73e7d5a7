"""The console's pages, in menu order. A new page is a router module and one entry here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NavEntry:
    label: str
    path: str


PAGES = (
    NavEntry("Periods", "/"),
    NavEntry("Customers", "/customers"),
    NavEntry("Invoices", "/invoices"),
    NavEntry("Held invoices", "/holds"),
    NavEntry("Parking lots", "/parking"),
    NavEntry("Audit log", "/audit"),
)
