"""Line-by-line comparison of an issued invoice with the one the current usage would produce (pure).

Lines are paired by the SolusVM server they bill (``#id`` in the description), so a VM whose hours
changed shows as one changed line rather than a removed and an added one. Lines without a server
reference (a "no usage" line, or a line someone added by hand in WHMCS) pair by exact description.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from services.invoicer.invoice_document import server_reference

ChangeKind = Literal["same", "changed", "added", "removed"]


@dataclass(frozen=True)
class Line:
    description: str
    amount: Decimal


@dataclass(frozen=True)
class LineChange:
    kind: ChangeKind
    issued: Line | None
    proposed: Line | None

    @property
    def description(self) -> str:
        line = self.proposed or self.issued
        assert line is not None
        return line.description


def _pairing_key(line: Line) -> str:
    reference = server_reference(line.description)
    return f"server:{reference}" if reference is not None else f"text:{line.description}"


def diff_lines(issued: Sequence[Line], proposed: Sequence[Line]) -> list[LineChange]:
    """Every line of both invoices once: in the proposed order, then lines only the issued one has."""
    remaining: dict[str, list[Line]] = {}
    for line in issued:
        remaining.setdefault(_pairing_key(line), []).append(line)
    changes = []
    for line in proposed:
        matches = remaining.get(_pairing_key(line))
        if not matches:
            changes.append(LineChange("added", None, line))
            continue
        old = matches.pop(0)
        same = old.description == line.description and old.amount == line.amount
        changes.append(LineChange("same" if same else "changed", old, line))
    for key_lines in remaining.values():
        changes.extend(LineChange("removed", line, None) for line in key_lines)
    return changes


def has_differences(changes: Sequence[LineChange]) -> bool:
    return any(change.kind != "same" for change in changes)
