"""Reading an ``api.php`` form the way PHP would: bracket arrays, PHP truthiness, WHMCS formats.

Booleans follow PHP on purpose: only ``""`` and ``"0"`` are false, so a client that sends Python's
``False`` (the string ``"False"``) gets the truthy surprise real WHMCS would give it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from simulators.common import SimClock
from simulators.whmcs.state import WhmcsState

_BRACKETED = re.compile(r"^([^\[\]]+)\[([^\[\]]*)\]$")
_ASCII_INTEGER = re.compile(r"^-?[0-9]+$")


class ApiError(Exception):
    """An application error: HTTP 200 with ``{"result": "error", "message": ...}``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Form:
    """The posted fields: plain keys, and PHP arrays written ``name[key]`` or ``name[]``."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.values: dict[str, str] = {}
        self.arrays: dict[str, dict[str, str]] = {}
        for key, value in pairs:
            match = _BRACKETED.match(key)
            if match is None:
                self.values[key] = value
                continue
            name, index = match.groups()
            array = self.arrays.setdefault(name, {})
            if index == "":
                numeric = [int(k) for k in array if _ASCII_INTEGER.match(k)]
                index = str(max(numeric) + 1 if numeric else 0)
            array[index] = value

    def get(self, name: str, default: str = "") -> str:
        return self.values.get(name, default).strip()

    def has(self, name: str) -> bool:
        return name in self.values

    def flag(self, name: str, default: bool = False) -> bool:
        if name not in self.values:
            return default
        return self.values[name] not in ("", "0")

    def integer(self, name: str) -> int | None:
        """An id as PHP's ``(int)`` of a numeric string would read it; anything else is no id.
        ASCII digits only: Python's int() also takes "1_0" and full-width digits, PHP does not."""
        text = self.get(name)
        return int(text) if _ASCII_INTEGER.match(text) else None

    def decimal(self, name: str, *, error: str) -> Decimal | None:
        text = self.get(name)
        return parse_decimal(text, error=error) if text else None

    def array(self, name: str) -> dict[str, str]:
        return self.arrays.get(name, {})


def parse_decimal(text: str, *, error: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ApiError(error) from None
    if not value.is_finite():
        raise ApiError(error)
    return value


def parse_date(text: str, *, error: str) -> date:
    try:
        return datetime.strptime(text.strip(), "%Y-%m-%d").date()
    except ValueError:
        raise ApiError(error) from None


@dataclass
class ActionContext:
    """What an action handler gets besides the form."""

    state: WhmcsState
    clock: SimClock
    base_url: str

    def today(self) -> date:
        return self.clock.now().date()

    def now(self) -> datetime:
        return self.clock.now()


NULL_DATETIME = "0000-00-00 00:00:00"
NULL_DATE = "0000-00-00"


def format_datetime(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else NULL_DATETIME


def format_date(day: date | None) -> str:
    return day.isoformat() if day is not None else NULL_DATE


def format_rate(rate: Decimal) -> str:
    return str(rate.quantize(Decimal("0.001")))


def page_of(items: list[Any], form: Form, *, default_limit: int = 25) -> tuple[list[Any], int]:
    """``limitstart``/``limitnum`` paging; returns the page and its start offset."""
    start = max(form.integer("limitstart") or 0, 0)
    limit = form.integer("limitnum")
    limit = default_limit if limit is None or limit <= 0 else limit
    return items[start : start + limit], start


def wrapped(items: list[Any], key: str) -> Any:
    """WHMCS wraps a list as ``{key: [...]}`` and answers an empty one with ``""``."""
    return {key: items} if items else ""
