"""The activity log (§4.2a): entries written as the clock reaches their instant, numbered in that order.

A seeded history puts entries in the future (a deletion on the 20th); they wait here, by instant, and
are written (given their id) once the clock passes them, as a panel writes an entry when the event
happens. So ids always follow time, and a reader that pages "until what it has already seen" meets the
log as it would meet a real, growing one.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from datetime import datetime
from typing import Any

from simulators.solusvm.model import ActivityLog, Server
from simulators.solusvm.timestamps import format_timestamp, parse_aware_timestamp

VM_CREATED = "compute_resource_vm_created"
VM_CREATE_REQUESTED = "compute_resource_vm_create_requested"
VM_DELETE_REQUESTED = "compute_resource_vm_delete_requested"
VM_BATCH_DELETED = "compute_resource_vm_batch_deleted"
DELETE_EVENTS = (VM_DELETE_REQUESTED, VM_BATCH_DELETED)


def server_entry(event: str, server: Server, owner_email: str, plan_id: int) -> dict[str, Any]:
    """An entry about ``server``. [I] ``data`` is undocumented: this simulator names the server and, as
    the server object does, its owner and plan; the entry's user is the server's owner."""
    return {
        "event": event,
        "user_id": server.user_id,
        "user_email": owner_email,
        "data": {
            "id": server.id,
            "uuid": server.uuid,
            "name": server.name,
            "user_id": server.user_id,
            "plan_id": plan_id,
        },
    }


class ActivityBook:
    """Written entries (oldest first) and pending ones (a heap by instant). The caller holds the lock."""

    def __init__(self) -> None:
        self.written: list[ActivityLog] = []
        self.pending: list[tuple[datetime, int, dict[str, Any]]] = []
        self._sequence = 0

    def add(self, at: datetime, entry: dict[str, Any]) -> None:
        self._sequence += 1
        heapq.heappush(self.pending, (at, self._sequence, entry))

    def written_by(self, now: datetime, next_id: Callable[[], int]) -> list[ActivityLog]:
        while self.pending and self.pending[0][0] <= now:
            at, _, entry = heapq.heappop(self.pending)
            self.written.append(ActivityLog(id=next_id(), created_at=at, **entry))
        return self.written

    def dump(self) -> dict[str, Any]:
        return {
            "activity_logs": [entry.dump() for entry in self.written],
            "pending_logs": [{"at": format_timestamp(at), **entry} for at, _, entry in sorted(self.pending)],
        }

    def load(self, data: dict[str, Any]) -> None:
        self.written = [ActivityLog.load(entry) for entry in data.get("activity_logs", [])]
        for pending in data.get("pending_logs", []):
            entry = dict(pending)
            self.add(parse_aware_timestamp(entry.pop("at")), entry)
