"""``postpay dlq list|show|requeue|purge``: the operator's view of parked messages.

Every requeue and purge asks why and logs an audit line with who, when and why.
"""

from __future__ import annotations

import getpass
import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from postpay.bootstrap import System, make_bus
from shared.bus.memory import InMemoryBus
from shared.bus.messages import ParkedMessage
from shared.bus.parking import ParkingLotMissing, Selection
from shared.bus.rabbit import CONNECTION_ERRORS
from shared.settings import KernelSettings

dlq_app = typer.Typer(help="Inspect and requeue parked (dead-lettered) messages.", no_args_is_help=True)
console = Console()

QueueArgument = Annotated[str, typer.Argument(help="A handler queue (invoicer.create_invoice) or its parking lot.")]
PositionsOption = Annotated[list[int], typer.Option("--position", "-p", help="Position shown by `dlq list`.")]
IdsOption = Annotated[list[str], typer.Option("--id", help="Message (event) id.")]
AllOption = Annotated[bool, typer.Option("--all", help="Every message in the parking lot.")]
ReasonOption = Annotated[str, typer.Option("--reason", "-r", help="Why (goes to the audit log).")]
ActorOption = Annotated[str | None, typer.Option("--by", help="Who is acting (default: user@host).")]


def _parking_lot() -> tuple[Any, Any]:
    kernel = KernelSettings()
    bus = make_bus(kernel)
    if isinstance(bus, InMemoryBus):
        typer.echo(
            "The in-process bus keeps its parking lot inside the running process; "
            "set POSTPAY_AMQP_URL to inspect RabbitMQ.",
            err=True,
        )
        raise typer.Exit(2)
    system = System(kernel=kernel, bus=bus)
    bus.subscriptions = [s for service in system.services for s in service.subscriptions]
    return bus, bus.parking_lot()


@contextmanager
def _plain_errors() -> Iterator[None]:
    """An operator gets one line saying what is wrong, not a traceback."""
    try:
        yield
    except ParkingLotMissing as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    except CONNECTION_ERRORS as exc:
        typer.echo(f"cannot reach RabbitMQ at POSTPAY_AMQP_URL: {exc.__class__.__name__}: {exc}", err=True)
        raise typer.Exit(1) from exc


def _lot_name(bus: Any, queue: str) -> str:
    base = queue.removesuffix(".parked")
    prefix = f"{bus.naming.namespace}." if bus.naming.namespace else ""
    if prefix and base.startswith(prefix):
        base = base[len(prefix) :]
    known = {s.queue for s in bus.subscriptions}
    if base not in known:
        typer.echo(f"no handler queue {base!r}; known: {', '.join(sorted(known))}", err=True)
        raise typer.Exit(2)
    return bus.naming.parking_lot(base)


def _selection(positions: list[int], ids: list[str], everything: bool) -> Selection:
    try:
        return Selection(positions=frozenset(positions), message_ids=frozenset(ids), everything=everything)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc


def _actor(by: str | None) -> str:
    return by or f"{getpass.getuser()}@{socket.gethostname()}"


@dlq_app.command("list")
def list_parked(
    queue: Annotated[str | None, typer.Argument(help="Show this parking lot's messages.")] = None, limit: int = 100
) -> None:
    """Parking lots and their counts, or the messages of one."""
    bus, lot = _parking_lot()
    if queue is None:
        table = Table("parking lot", "messages")
        with _plain_errors():
            counts = lot.queues()
        for name, count in sorted(counts.items()):
            table.add_row(name, "not declared yet" if count is None else str(count))
        console.print(table)
        return
    with _plain_errors():
        messages = lot.list(_lot_name(bus, queue), limit=limit)
    table = Table("#", "event id", "type", "reason", "parked at", "error")
    for message in messages:
        table.add_row(
            str(message.position),
            message.message_id or "-",
            message.event_type or "-",
            message.reason,
            message.parked_at or "-",
            message.error.splitlines()[-1][:80] if message.error else "",
        )
    console.print(table)


@dlq_app.command("show")
def show(queue: QueueArgument, position: PositionsOption = [], id: IdsOption = []) -> None:  # noqa: B006
    """One parked message in full: reason, error, headers and body."""
    bus, lot = _parking_lot()
    selection = _selection(position, id, False)
    with _plain_errors():
        messages = lot.list(_lot_name(bus, queue), limit=100_000)
    for message in messages:
        if selection.matches(message):
            console.print_json(json.dumps(_describe(message), default=str))


def _describe(message: ParkedMessage) -> dict[str, Any]:
    try:
        body: Any = json.loads(message.body)
    except ValueError:
        body = message.body.decode("utf-8", "replace")
    return {
        "position": message.position,
        "message_id": message.message_id,
        "event_type": message.event_type,
        "reason": message.reason,
        "error": message.error,
        "parked_at": message.parked_at,
        "content_type": message.content_type,
        "headers": message.headers,
        "body": body,
    }


@dlq_app.command("requeue")
def requeue(
    queue: QueueArgument,
    reason: ReasonOption,
    # typer takes a list option's default from the signature; nothing mutates it.
    position: PositionsOption = [],  # noqa: B006
    id: IdsOption = [],  # noqa: B006
    all: AllOption = False,
    by: ActorOption = None,
) -> None:
    """Send parked messages back to their queue, one, some or all."""
    bus, lot = _parking_lot()
    with _plain_errors():
        moved = lot.requeue(_lot_name(bus, queue), _selection(position, id, all), actor=_actor(by), reason=reason)
    typer.echo(f"requeued {len(moved)} message(s)")


@dlq_app.command("purge")
def purge(
    queue: QueueArgument,
    reason: ReasonOption,
    # typer takes a list option's default from the signature; nothing mutates it.
    position: PositionsOption = [],  # noqa: B006
    id: IdsOption = [],  # noqa: B006
    all: AllOption = False,
    by: ActorOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete parked messages for good."""
    bus, lot = _parking_lot()
    name = _lot_name(bus, queue)
    if not yes:
        typer.confirm(f"Delete the selected messages of {name} for good?", abort=True)
    with _plain_errors():
        removed = lot.purge(name, _selection(position, id, all), actor=_actor(by), reason=reason)
    typer.echo(f"purged {len(removed)} message(s)")


def register(app: typer.Typer) -> None:
    app.add_typer(dlq_app, name="dlq")
