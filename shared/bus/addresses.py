"""Where the broker is: one AMQP URL, or the nodes of one RabbitMQ cluster as a failover list.

    amqp://postpay:secret@rabbit-1:5672/;amqp://postpay:secret@rabbit-2:5672/;amqp://postpay:secret@rabbit-3:5672/

A connection goes to the first address that answers, in the order given; when its node dies, the next
connection (a consumer's or a publisher's reconnect) tries the others. The addresses are nodes of one
cluster, so they share the user and the virtual host. A ``;`` inside a password is written ``%3B``.

Errors name the position of the bad address, never the address: it holds the password.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

SCHEMES = ("amqp", "amqps")


class BrokerAddressError(ValueError):
    """A broker URL or failover list that cannot be used as it is."""


def broker_urls(value: str) -> list[str]:
    """The addresses of ``value``, in order; each checked, and all of one user and virtual host."""
    parts = [part.strip() for part in value.split(";")]
    identities = set()
    for number, part in enumerate(parts, start=1):
        where = f"address {number} of {len(parts)} of the broker failover list" if len(parts) > 1 else "the broker URL"
        if not part:
            raise BrokerAddressError(f"{where} is empty (a ';' too many?)")
        url = urlsplit(part)
        if url.scheme not in SCHEMES:
            raise BrokerAddressError(f"{where} must start with amqp:// or amqps://")
        try:
            host, _ = url.hostname, url.port
        except ValueError:
            raise BrokerAddressError(f"{where} has a port that is not a number from 0 to 65535") from None
        if not host:
            raise BrokerAddressError(f"{where} names no host")
        identities.add((unquote(url.username or ""), virtual_host(url.path)))
    if len(identities) > 1:
        raise BrokerAddressError(
            "every address of the broker failover list must name the same user and virtual host: "
            "they are nodes of one cluster"
        )
    return parts


def virtual_host(path: str) -> str:
    """The virtual host a URL path names, as RabbitMQ clients read it (none or ``/``: the default)."""
    return "/" if path in ("", "/") else unquote(path[1:])
