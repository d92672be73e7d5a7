"""Who consumes what, and how the broker objects are named.

Like nameko: a service declares its subscriptions; each subscription (one consuming handler) owns one
durable queue named ``<service>.<handler>``, bound to the topic exchange with the routing keys of the
events it consumes, plus its retry queues and its parking lot:

    postpay.events (topic) --UsageCollected--> invoicer.create_invoice (quorum)
    invoicer.create_invoice.retry.1s .. .retry.600s (TTL, dead-letter back to the queue)
    invoicer.create_invoice.parked                (what needs a person)
    invoicer.internal (direct) --<queue name>--> each of the above (retry and parking copies, requeues)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Concatenate, Literal, ParamSpec, TypeAlias, TypeVar, overload

from shared.events.base import Event
from shared.ports import Mailer, SolusVM, Whmcs

if TYPE_CHECKING:
    from shared.bus.handler_context import DatabaseContext, HandlerContext

EXCHANGE = "postpay.events"

E = TypeVar("E", bound=Event)

# A handler applies one event of type E. Its ports (``shared.ports``) and settings are bound by the
# service's build() (``bind``), so its signature says which upstream calls it may make.
Handler: TypeAlias = Callable[[E, "HandlerContext"], None]
# A database-only handler gets the narrower context: ``ctx.session`` and ``ctx.emit``, no other
# transaction; only such a handler may be batched (see Subscription).
DatabaseHandler: TypeAlias = Callable[[E, "DatabaseContext"], None]

# The batch for handlers whose whole effect is a few rows in their own database: large enough that
# one commit serves many events under load, small enough that a rolled-back batch costs little.
DATABASE_ONLY_BATCH = 64


P = ParamSpec("P")


@overload
def bind(
    handler: Callable[Concatenate[E, DatabaseContext, P], None], /, *args: P.args, **kwargs: P.kwargs
) -> DatabaseHandler[E]: ...


@overload
def bind(
    handler: Callable[Concatenate[E, HandlerContext, P], None], /, *args: P.args, **kwargs: P.kwargs
) -> Handler[E]: ...


def bind(handler: Callable[..., None], /, *args: Any, **kwargs: Any) -> Callable[..., None]:
    """``handler`` with its ports and settings given: ``bind(handlers.provision_user, solusvm=deps.solusvm,
    settings=settings)``. Unlike ``functools.partial`` (which it returns), the type checker sees what is
    left: an event the handler takes, its context, and each bound argument's type."""
    return functools.partial(handler, *args, **kwargs)


# The events a handler of several event types takes, typed as their union (a tuple literal's type
# would be their common base): ``STANDING: Events[UserLocked | InvoicePaid] = (UserLocked, InvoicePaid)``.
Events: TypeAlias = tuple[type[E], ...]


@dataclass(frozen=True)
class Subscription:
    """One consuming handler: the events it takes and the function that applies them.

    ``batch`` > 1 lets the consumer apply up to that many waiting deliveries in one transaction
    (one inbox statement, one commit). Only for handlers whose whole effect is in ``ctx.session``:
    no upstream call, no email, no separate transaction, since a failure anywhere in the batch
    runs every handler of it again, alone. The types say so: a batched subscription takes a
    ``DatabaseHandler`` (whose context has no other transaction), and no port may be bound to it.
    """

    service: str
    name: str
    events: tuple[type[Event], ...]
    handler: Handler[Any]
    batch: int = 1

    if TYPE_CHECKING:  # the runtime __init__ is the dataclass's; these say which handler may be batched

        @overload
        def __init__(
            self, service: str, name: str, events: Events[E], handler: Handler[E], batch: Literal[1] = 1
        ) -> None: ...

        @overload
        def __init__(
            self, service: str, name: str, events: Events[E], handler: DatabaseHandler[E], batch: int
        ) -> None: ...

        def __init__(
            self, service: str, name: str, events: Events[Event], handler: Handler[Any], batch: int = 1
        ) -> None: ...

    def __post_init__(self) -> None:
        if not self.events:
            raise ValueError(f"{self.service}.{self.name} consumes no event")
        if self.batch < 1:
            raise ValueError(f"{self.service}.{self.name}: batch must be at least 1, not {self.batch}")
        if self.batch > 1 and _binds_a_port(self.handler):
            raise ValueError(
                f"{self.service}.{self.name} is batched, so it may touch only its own database, "
                "but an upstream or the mailer is bound to its handler"
            )

    # Cached: both are read for every delivery (a frozen dataclass's fields never change).
    @functools.cached_property
    def queue(self) -> str:
        return f"{self.service}.{self.name}"

    @functools.cached_property
    def routing_keys(self) -> tuple[str, ...]:
        return tuple(event.event_type for event in self.events)

    def accepts(self, event_type: str) -> bool:
        return event_type in self.routing_keys


@dataclass(frozen=True)
class Naming:
    """Broker names, with an optional namespace prefix that isolates test runs and tenants."""

    namespace: str = ""

    def _prefix(self, name: str) -> str:
        return f"{self.namespace}.{name}" if self.namespace else name

    @property
    def exchange(self) -> str:
        return self._prefix(EXCHANGE)

    def queue(self, subscription_queue: str) -> str:
        return self._prefix(subscription_queue)

    def retry_queue(self, subscription_queue: str, delay_seconds: float) -> str:
        # Named by delay, not by position: changing the configured delays declares new queues
        # instead of colliding with existing ones declared with another TTL.
        return f"{self.queue(subscription_queue)}.retry.{format_delay(delay_seconds)}"

    def parking_lot(self, subscription_queue: str) -> str:
        return f"{self.queue(subscription_queue)}.parked"

    def internal_exchange(self, service: str) -> str:
        """The direct exchange into one service's own queues (retries, parking, requeues)."""
        return self._prefix(f"{service}.internal")


def format_delay(seconds: float) -> str:
    milliseconds = round(seconds * 1000)
    return f"{milliseconds // 1000}s" if milliseconds % 1000 == 0 else f"{milliseconds}ms"


def _binds_a_port(handler: Callable[..., None]) -> bool:
    """Whether a port was bound to ``handler`` with ``functools.partial`` (the types cannot see that)."""
    bound = [*getattr(handler, "args", ()), *getattr(handler, "keywords", {}).values()]
    return any(isinstance(value, (Whmcs, SolusVM, Mailer)) for value in bound)


def check_unique(subscriptions: Iterable[Subscription]) -> list[Subscription]:
    subscriptions = list(subscriptions)
    seen: set[str] = set()
    for subscription in subscriptions:
        if subscription.queue in seen:
            raise ValueError(f"two subscriptions share the queue {subscription.queue}")
        seen.add(subscription.queue)
    return subscriptions


def consumed_event_types(subscriptions: Sequence[Subscription]) -> set[str]:
    return {key for subscription in subscriptions for key in subscription.routing_keys}


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: ``*`` is one word, ``#`` zero or more words."""
    return _match(pattern.split("."), routing_key.split("."))


def _match(pattern: list[str], words: list[str]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match(rest, words[index:]) for index in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head == words[0]) and _match(rest, words[1:])
