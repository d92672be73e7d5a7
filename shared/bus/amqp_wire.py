"""What every part of the RabbitMQ bus shares about py-amqp: which errors mean the connection is gone,
what a timeout looks like, and a message body as bytes."""

from __future__ import annotations

import socket

import amqp
import kombu.exceptions

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    amqp.exceptions.AMQPError,
    kombu.exceptions.KombuError,
)

# The broker cannot be reached (refused, reset, not answering): worth waiting out. Narrower than the
# above on purpose: a channel error, such as a queue declared with other arguments, is a configuration
# fault that waiting would only hide.
UNREACHABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    kombu.exceptions.OperationalError,
    amqp.exceptions.RecoverableConnectionError,
)


def is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, (socket.timeout, TimeoutError))


def body_bytes(raw: amqp.Message) -> bytes:
    body = raw.body
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode(raw.properties.get("content_encoding") or "utf-8", "surrogatepass")
    return bytes(body)
