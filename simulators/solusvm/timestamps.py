"""RFC3339 timestamps as the SolusVM 2 simulator reads and writes them.

The usage endpoint (§8.1) is strict: only UTC, written with ``Z`` or ``+00:00``. Everything the simulator
emits uses the ``Z`` form, with a fraction only when the instant has one, so whole-second instants
look exactly like the reference examples (``2024-05-01T00:00:00Z``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

_UTC_RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:[Zz]|\+00:00)$")


def parse_utc_timestamp(text: str) -> datetime | None:
    """The instant ``text`` names if it is RFC3339 in UTC, else None (never raises)."""
    match = _UTC_RFC3339.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction = match.groups()
    # Digits beyond microseconds cannot be represented; truncating them keeps the instant inside [from, to).
    microsecond = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), microsecond, tzinfo=UTC)
    except ValueError:
        return None


def parse_aware_timestamp(text: str) -> datetime:
    """Any ISO 8601 / RFC3339 timestamp that carries an offset, as UTC (admin seeding is lenient).

    Raises ValueError for a value without an offset: a naive time would be ambiguous.
    """
    moment = datetime.fromisoformat(text.strip().replace("z", "Z").replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"timestamp without an offset: {text!r}")
    return moment.astimezone(UTC)


def format_timestamp(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ``, with ``.ffffff`` only when the instant is not a whole second."""
    moment = moment.astimezone(UTC)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def format_optional(moment: datetime | None) -> str | None:
    return None if moment is None else format_timestamp(moment)
