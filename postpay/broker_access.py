"""What each RabbitMQ user may do, derived from the event catalog (``Event.producers``) and the
services' subscriptions: the definitions Docker Compose loads, the resources the Kubernetes manifests
declare, and the tests on a real broker all come from here.

    a service      configure: its own queues and its own exchange (``<service>.``), nothing else
                   write:     the events exchange, and its own queues and exchange
                   read:      the events exchange (to bind), its own queues and exchange
                   topic:     publish the event types it produces, bind the ones it consumes
    the operator   publish the event types the catalog gives it (closing and replaying a month, an
                   accounts sync), read parking lots, requeue through a service's own exchange
    the relay      nothing but connecting: it publishes each outbox as that outbox's service

Nobody may write to the default exchange (``amq.default``), which reaches every queue by name.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.bus.identity import RELAY, BrokerUsers
from shared.bus.topology import Naming, Subscription
from shared.events.base import EVENT_TYPES, OPERATOR

NOTHING = "^$"  # no resource is named "" (the default exchange is "amq.default" to permission checks)
ADMIN = "postpay-admin"  # the broker's own administrator (management UI, maintenance), in Compose


@dataclass(frozen=True)
class Grant:
    """One user's permissions on the vhost, and its topic permissions on the events exchange."""

    producer: str
    user: str
    configure: str
    write: str
    read: str
    topic_write: str
    topic_read: str


def produced_by(producer: str) -> list[str]:
    """The event types the catalog lets ``producer`` publish."""
    return sorted(event.event_type for event in EVENT_TYPES.all() if producer in event.producers)


def _one_of(names: Iterable[str]) -> str:
    names = sorted(set(names))
    return f"^({'|'.join(re.escape(name) for name in names)})$" if names else NOTHING


def grants(
    naming: Naming, users: BrokerUsers, services: Mapping[str, Sequence[Subscription]], publishers: Sequence[str] = ()
) -> list[Grant]:
    """Every service's user, the operator's, the relay's, and those of ``publishers`` (producers that
    only publish what the catalog gives them, such as a billing system outside postpay), in that order."""
    prefix = re.escape(f"{naming.namespace}.") if naming.namespace else ""
    exchange = re.escape(naming.exchange)
    result = []
    for service, subscriptions in sorted(services.items()):
        own = f"{prefix}{re.escape(service)}\\..+"
        consumed = {key for subscription in subscriptions for key in subscription.routing_keys}
        result.append(
            Grant(
                service,
                users.user_of(service),
                configure=f"^{own}$",
                write=f"^({exchange}|{own})$",
                read=f"^({exchange}|{own})$",
                topic_write=_one_of(produced_by(service)),
                topic_read=_one_of(consumed),
            )
        )
    names = "|".join(re.escape(service) for service in sorted(services))
    result.append(
        Grant(
            OPERATOR,
            users.user_of(OPERATOR),
            configure=NOTHING,
            write=f"^({exchange}|{prefix}({names})\\.internal)$",
            read=f"^{prefix}({names})\\..+\\.parked$",
            topic_write=_one_of(produced_by(OPERATOR)),
            topic_read=NOTHING,
        )
    )
    result.append(Grant(RELAY, users.user_of(RELAY), NOTHING, NOTHING, NOTHING, NOTHING, NOTHING))
    for producer in publishers:
        result.append(
            Grant(
                producer,
                users.user_of(producer),
                NOTHING,
                f"^{exchange}$",
                NOTHING,
                _one_of(produced_by(producer)),
                NOTHING,
            )
        )
    return result


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64(salt + sha256(salt + password))."""
    salt = os.urandom(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def definitions(
    naming: Naming,
    users: BrokerUsers,
    services: Mapping[str, Sequence[Subscription]],
    passwords: Mapping[str, str],
    *,
    vhost: str = "/",
    admin_password: str | None = None,
    publishers: Sequence[str] = (),
) -> dict[str, Any]:
    """RabbitMQ definitions (``load_definitions`` / ``rabbitmqctl import_definitions``): the vhost, the
    events exchange, a user per producer with its permissions, and an administrator when a password
    for one is given. ``passwords`` is by producer; a user without one cannot log in."""
    every = grants(naming, users, services, publishers)
    accounts = [
        {
            "name": grant.user,
            "password_hash": password_hash(passwords[grant.producer]) if grant.producer in passwords else "",
            "hashing_algorithm": "rabbit_password_hashing_sha256",
            "tags": [],
        }
        for grant in every
    ]
    permissions = [
        {"user": g.user, "vhost": vhost, "configure": g.configure, "write": g.write, "read": g.read} for g in every
    ]
    if admin_password is not None:
        accounts.append(
            {
                "name": ADMIN,
                "password_hash": password_hash(admin_password),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": ["administrator"],
            }
        )
        permissions.append({"user": ADMIN, "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"})
    return {
        "users": accounts,
        "vhosts": [{"name": vhost}],
        "permissions": permissions,
        "topic_permissions": [
            {"user": g.user, "vhost": vhost, "exchange": naming.exchange, "write": g.topic_write, "read": g.topic_read}
            for g in every
        ],
        "exchanges": [
            {
                "name": naming.exchange,
                "vhost": vhost,
                "type": "topic",
                "durable": True,
                "auto_delete": False,
                "internal": False,
                "arguments": {},
            }
        ],
        "queues": [],
        "bindings": [],
        "policies": [],
        "parameters": [],
        "global_parameters": [],
    }


def kubernetes_resources(
    naming: Naming,
    users: BrokerUsers,
    services: Mapping[str, Sequence[Subscription]],
    *,
    cluster: str,
    namespace: str,
    vhost: str = "/",
) -> list[dict[str, Any]]:
    """The messaging topology operator's resources for the same users: per user a Secret naming it
    (the operator generates its password into ``<user>-user-credentials``), a User, a Permission and a
    TopicPermission; and the events exchange, which no service may declare."""
    reference = {"name": cluster}
    resources: list[dict[str, Any]] = [
        {
            "apiVersion": "rabbitmq.com/v1beta1",
            "kind": "Exchange",
            "metadata": {"name": _k8s_name(naming.exchange), "namespace": namespace},
            "spec": {
                "name": naming.exchange,
                "vhost": vhost,
                "type": "topic",
                "durable": True,
                "autoDelete": False,
                "rabbitmqClusterReference": reference,
            },
        }
    ]
    for grant in grants(naming, users, services):
        name = _k8s_name(grant.user)
        metadata = {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": "postpay", "postpay.io/producer": grant.producer},
        }
        resources += [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {**metadata, "name": f"{name}-username"},
                "type": "Opaque",
                "stringData": {"username": grant.user},
            },
            {
                "apiVersion": "rabbitmq.com/v1beta1",
                "kind": "User",
                "metadata": metadata,
                "spec": {
                    "tags": [],
                    "rabbitmqClusterReference": reference,
                    "importCredentialsSecret": {"name": f"{name}-username"},
                },
            },
            {
                "apiVersion": "rabbitmq.com/v1beta1",
                "kind": "Permission",
                "metadata": metadata,
                "spec": {
                    "vhost": vhost,
                    "userReference": {"name": name},
                    "rabbitmqClusterReference": reference,
                    "permissions": {"configure": grant.configure, "write": grant.write, "read": grant.read},
                },
            },
            {
                "apiVersion": "rabbitmq.com/v1beta1",
                "kind": "TopicPermission",
                "metadata": metadata,
                "spec": {
                    "vhost": vhost,
                    "userReference": {"name": name},
                    "rabbitmqClusterReference": reference,
                    "permissions": {"exchange": naming.exchange, "write": grant.topic_write, "read": grant.topic_read},
                },
            },
        ]
    return resources


def _k8s_name(name: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
