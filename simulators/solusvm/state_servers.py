"""The simulator's servers and activity log, as ``SimState`` keeps them (its base class).

Every method takes the time as an argument, so the routes decide what "now" is (the ``SimClock``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from simulators.solusvm.activity import (
    VM_CREATE_REQUESTED,
    VM_CREATED,
    VM_DELETE_REQUESTED,
    ActivityBook,
    server_entry,
)
from simulators.solusvm.apierrors import Invalid, not_found
from simulators.solusvm.model import ActivityLog, Plan, Server
from simulators.solusvm.usage import PlanPrice, RunInterval, ServerRuntime

if TYPE_CHECKING:
    import threading

    from simulators.solusvm.model import Location, User


class ServerRecords:
    lock: threading.RLock
    users: dict[int, User]
    plans: dict[int, Plan]
    locations: dict[int, Location]
    servers: dict[int, Server]
    server_ids_by_user: dict[int, list[int]]
    server_id_by_uuid: dict[str, int]
    activity: ActivityBook
    _visible: tuple[int, datetime, datetime | None, list[Server]] | None
    _version: int

    def allocate_id(self, kind: str, explicit: int | None = None) -> int:
        raise NotImplementedError

    def new_uuid(self) -> str:
        raise NotImplementedError

    # Servers ---------------------------------------------------------------------------------------

    def add_server(self, server: Server) -> Server:
        with self.lock:
            self.servers[server.id] = server
            self.server_ids_by_user.setdefault(server.user_id, []).append(server.id)
            self.server_id_by_uuid[server.uuid] = server.id
            self.changed()
            return server

    def changed(self) -> None:
        """Call after changing a server's history in place: cached views are rebuilt on next use."""
        with self.lock:
            self._version += 1

    def plan_at(self, server: Server, now: datetime) -> Plan:
        """The plan the server is on at ``now``; a deleted server keeps the plan it had at deletion."""
        if server.deleted_by(now):
            if server.deleted_plan is not None:
                return server.deleted_plan
            return self.plans[server.plan_id_at(server.deleted_at)]  # type: ignore[arg-type]
        return self.plans[server.plan_id_at(now)]

    def create_server(self, fields: dict[str, Any], owner_id: int, now: datetime) -> Server:
        """A new server, running from ``now`` (its first run interval opens at creation)."""
        with self.lock:
            errors: dict[str, list[str]] = {}
            if fields["plan"] not in self.plans:
                errors["plan"] = ["The selected plan is invalid."]
            if fields["location"] not in self.locations:
                errors["location"] = ["The selected location is invalid."]
            if owner_id not in self.users:
                errors["user"] = ["The selected user is invalid."]
            if errors:
                raise Invalid(errors)
            server_id = self.allocate_id("server")
            server = Server(
                id=server_id,
                uuid=self.new_uuid(),
                name=fields.get("name") or f"vps-{server_id}",
                user_id=owner_id,
                plan_id=fields["plan"],
                location_id=fields["location"],
                created_at=now,
                intervals=[[now, None]],
                os_id=fields.get("os_id"),
                application_id=fields.get("application_id"),
                description=fields.get("description", ""),
                fqdns=list(fields.get("fqdns", [])),
            )
            self.add_server(server)
            self.log_server_event(VM_CREATE_REQUESTED, server, now)
            self.log_server_event(VM_CREATED, server, now)
            return server

    def get_server(self, server_id: int, *, owner_id: int | None = None, now: datetime | None = None) -> Server:
        """A live server (404 once deleted, or when it belongs to someone other than ``owner_id``).

        With ``now``, "live" is read at that instant: a server seeded to be created later, or already
        deleted by then, is not there.
        """
        with self.lock:
            server = self.servers.get(server_id)
        if server is None or (server.deleted_at is not None if now is None else not server.exists_at(now)):
            raise not_found()
        if owner_id is not None and server.user_id != owner_id:
            raise not_found()
        return server

    def server_by_uuid(self, server_uuid: str, now: datetime | None = None) -> Server:
        with self.lock:
            server_id = self.server_id_by_uuid.get(server_uuid)
        if server_id is None:
            raise not_found()
        return self.get_server(server_id, now=now)

    def list_servers(self, user_id: int | None = None, now: datetime | None = None) -> list[Server]:
        """Live servers, ordered by id; of one user when ``user_id`` is given; at ``now`` when given."""
        with self.lock:
            if user_id is None and now is not None:
                return self._visible_at(now)
            if user_id is None:
                candidates = list(self.servers.values())
            else:
                candidates = [self.servers[sid] for sid in self.server_ids_by_user.get(user_id, [])]
        if now is None:
            return sorted((s for s in candidates if s.deleted_at is None), key=lambda s: s.id)
        return sorted((s for s in candidates if s.exists_at(now)), key=lambda s: s.id)

    def _visible_at(self, now: datetime) -> list[Server]:
        cached = self._visible
        if cached is not None:
            version, valid_from, valid_until, servers = cached
            if version == self._version and valid_from <= now and (valid_until is None or now < valid_until):
                return servers
        visible = [self.servers[sid] for sid in sorted(self.servers) if self.servers[sid].exists_at(now)]
        upcoming = [
            moment
            for server in self.servers.values()
            for moment in (server.created_at, server.deleted_at)
            if moment is not None and moment > now
        ]
        self._visible = (self._version, now, min(upcoming, default=None), visible)
        return visible

    def delete_server(self, server: Server, now: datetime) -> None:
        with self.lock:
            server.stop(now)
            server.deleted_at = now
            server.deleted_plan = Plan(**self.plans[server.plan_id_at(now)].__dict__)
            self.changed()
            self.log_server_event(VM_DELETE_REQUESTED, server, now)

    def server_runtimes(self, user_id: int, now: datetime | None = None) -> list[ServerRuntime]:
        """Every server the user ever had, deleted ones included, in the usage computation's terms;
        the plan is the one at ``now`` (or at deletion), §8.3 rule 5."""
        with self.lock:
            runtimes = []
            for server_id in self.server_ids_by_user.get(user_id, []):
                server = self.servers[server_id]
                if now is None:
                    plan = server.deleted_plan or self.plans[server.plan_id_at(server.deleted_at or _END_OF_TIME)]
                else:
                    plan = self.plan_at(server, now)
                runtimes.append(
                    ServerRuntime(
                        id=server.id,
                        uuid=server.uuid,
                        name=server.name,
                        plan=PlanPrice(plan.id, plan.name, plan.tokens_per_hour, plan.tokens_per_month),
                        created_at=server.created_at,
                        deleted_at=server.deleted_at if now is None or server.deleted_by(now) else None,
                        intervals=_until(server.intervals, now),
                    )
                )
            return runtimes

    # Activity log ----------------------------------------------------------------------------------

    def log_server_event(self, event: str, server: Server, at: datetime) -> None:
        """Write an entry about ``server`` once the clock reaches ``at`` (at once if it has)."""
        owner = self.users.get(server.user_id)
        self.activity.add(at, server_entry(event, server, owner.email if owner else "", server.plan_id_at(at)))

    def logs_at(self, now: datetime) -> list[ActivityLog]:
        with self.lock:
            return self.activity.written_by(now, lambda: self.allocate_id("activity_log"))


_END_OF_TIME = datetime.max.replace(tzinfo=UTC)


def _until(intervals: list[list[datetime | None]], now: datetime | None) -> tuple[RunInterval, ...]:
    """The run intervals as of ``now``: what a seeded history says comes later has not happened yet."""
    if now is None:
        return tuple((start, end) for start, end in intervals)  # type: ignore[misc]
    return tuple(
        (start, None if end is None or end > now else end)  # type: ignore[misc]
        for start, end in intervals
        if start is not None and start <= now
    )
