"""Who published a message, and who may publish each event type.

RabbitMQ authenticates every connection and refuses a message whose ``user_id`` property is not the
connection's user, so a message's ``user_id`` says which broker user published it. Each producer (a
service, or the operators' tools) has a broker user of its own (``BrokerUsers``); each event type's
catalog entry (``Event.producers``) says which producers may publish it; a consumer parks an event
whose publisher is none of them as ``unauthorised-producer``.

A retry or parking copy is published by the consumer, and a requeue by the operator, not by the
original producer, and RabbitMQ lets nobody else's name into ``user_id``. So a copy names the
publisher it vouches for in a header, which a consumer believes only when the copy's own ``user_id``
is the consumer itself or the operator (``published_by``): nobody else can put that header past the
check, and neither of them writes a name it did not check.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.bus.messages import PUBLISHED_BY_HEADER
from shared.events.base import EVENT_TYPES

RELAY = "relay"  # ``postpay run relay``: publishes as each outbox's own service, consumes nothing
_USER_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,128}$")


def default_user(producer: str) -> str:
    """``postpay-<producer>``, with ``_`` as ``-``: postpay-usage-collector, postpay-operator."""
    return "postpay-" + producer.replace("_", "-")


@dataclass(frozen=True)
class BrokerUsers:
    """The broker user each producer publishes as: ``default_user`` unless ``named`` says otherwise,
    or ``shared`` for every producer (one user for everything: nobody is told apart; development)."""

    named: Mapping[str, str] = field(default_factory=dict)
    shared: str | None = None
    # allowed_users per event type, worked out once: every delivery asks.
    _allowed: dict[str, frozenset[str]] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def parse(cls, text: str) -> BrokerUsers:
        """``""``: the defaults; ``{"signup": "svc-signup", ...}``: those, the defaults for the rest;
        a single name: that one user for every producer."""
        text = text.strip()
        if not text:
            return cls()
        if text.startswith("{"):
            try:
                named = json.loads(text)
            except ValueError as exc:
                raise ValueError(f"not JSON: {exc}") from exc
            if not isinstance(named, dict) or not all(isinstance(v, str) for v in named.values()):
                raise ValueError('give a JSON object of producer to user name, e.g. {"signup": "postpay-signup"}')
            for user in named.values():
                _check_name(user)
            return cls(named=dict(named))
        return cls(shared=_check_name(text))

    @property
    def single_user(self) -> bool:
        return self.shared is not None

    def user_of(self, producer: str) -> str:
        if self.shared is not None:
            return self.shared
        return self.named.get(producer) or default_user(producer)

    def allowed_users(self, event_type: str) -> frozenset[str]:
        """The users whose events of this type consumers accept (none for an unknown type)."""
        allowed = self._allowed.get(event_type)
        if allowed is None:
            event_class = EVENT_TYPES.get(event_type)
            if event_class is None:
                return frozenset()  # not kept: a type may be registered later (a test's, a plug-in's)
            allowed = self._allowed[event_type] = frozenset(self.user_of(p) for p in event_class.producers)
        return allowed

    def allows(self, event_type: str, user: str | None) -> bool:
        return user is not None and user in self.allowed_users(event_type)


def _check_name(user: str) -> str:
    if not _USER_NAME.match(user):
        raise ValueError(f"{user!r} is not a broker user name (letters, digits, . _ @ -)")
    return user


def published_by(user_id: str | None, headers: Mapping[str, Any], trusted: Collection[str]) -> str | None:
    """The producer a delivery speaks for: its ``user_id``, or, on a copy made by a ``trusted`` user
    (the consumer itself, the operator), the publisher that copy vouches for (``""``: nobody)."""
    if user_id and user_id in trusted and PUBLISHED_BY_HEADER in headers:
        vouched = headers[PUBLISHED_BY_HEADER]
        if isinstance(vouched, bytes):
            vouched = vouched.decode("utf-8", "replace")
        return vouched if isinstance(vouched, str) and vouched else None
    return user_id or None
