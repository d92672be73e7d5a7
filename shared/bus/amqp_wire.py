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


def is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, (socket.timeout, TimeoutError))


def body_bytes(raw: amqp.Message) -> bytes:
    body = raw.body
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode(raw.properties.get("content_encoding") or "utf-8", "surrogatepass")
    return bytes(body)
