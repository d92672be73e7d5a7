"""Operator accounts and console sessions.

Passwords are hashed with Argon2id (argon2-cffi's defaults, RFC 9106's second recommended set); a hash
made with older parameters is upgraded at the next good login. A session is a random 256-bit cookie;
only its SHA-256 is stored, with the session's own CSRF token and its expiry. Every login, good or bad,
is an audit row; the failures counted there are the login rate limit.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from postpay.operators import audit
from postpay.operators.schema import operators, sessions

HASHER = PasswordHasher()
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD = 12
# Verifying against this when the username is unknown makes both answers cost the same.
_DUMMY_HASH = HASHER.hash(secrets.token_urlsafe(16))


class OperatorError(ValueError):
    pass


@dataclass(frozen=True)
class Operator:
    id: int
    username: str
    created_at: datetime
    created_by: str
    disabled_at: datetime | None
    last_login_at: datetime | None


@dataclass(frozen=True)
class ConsoleSession:
    operator: Operator
    csrf_token: str
    expires_at: datetime


def _operator(row: object) -> Operator:
    return Operator(*(getattr(row, name) for name in Operator.__dataclass_fields__))


def check_password(password: str, username: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise OperatorError(f"a password needs at least {MIN_PASSWORD} characters")
    if username.casefold() in password.casefold():
        raise OperatorError("the password must not contain the username")


def add_operator(session: Session, username: str, password: str, *, created_by: str, now: datetime) -> Operator:
    name = username.strip().lower()
    if not USERNAME.match(name):
        raise OperatorError("a username is 2-64 characters: lower-case letters, digits, '.', '_' or '-'")
    check_password(password, name)
    try:
        with session.begin_nested():
            session.execute(
                operators.insert().values(
                    username=name, password_hash=HASHER.hash(password), created_at=now, created_by=created_by[:200]
                )
            )
    except IntegrityError:
        raise OperatorError(f"there is already an operator {name}") from None
    audit.record_action(session, actor=created_by, action="operator.add", target=name, reason="", now=now)
    found = operator_named(session, name)
    assert found is not None
    return found


def operator_named(session: Session, username: str) -> Operator | None:
    row = session.execute(select(operators).where(operators.c.username == username.strip().lower())).first()
    return _operator(row) if row else None


def list_operators(session: Session) -> list[Operator]:
    return [_operator(row) for row in session.execute(select(operators).order_by(operators.c.username))]


def set_password(session: Session, username: str, password: str, *, actor: str, now: datetime) -> None:
    found = operator_named(session, username)
    if found is None:
        raise OperatorError(f"no operator {username}")
    check_password(password, found.username)
    session.execute(update(operators).where(operators.c.id == found.id).values(password_hash=HASHER.hash(password)))
    # A new password ends every session the old one opened.
    session.execute(delete(sessions).where(sessions.c.operator_id == found.id))
    audit.record_action(session, actor=actor, action="operator.password", target=found.username, reason="", now=now)


def disable_operator(session: Session, username: str, *, actor: str, reason: str, now: datetime) -> None:
    found = operator_named(session, username)
    if found is None:
        raise OperatorError(f"no operator {username}")
    session.execute(update(operators).where(operators.c.id == found.id).values(disabled_at=now))
    session.execute(delete(sessions).where(sessions.c.operator_id == found.id))
    audit.record_action(session, actor=actor, action="operator.disable", target=found.username, reason=reason, now=now)


def rate_limited(
    session: Session, username: str, ip_address: str | None, *, now: datetime, attempts: int, window: timedelta
) -> bool:
    return (
        audit.failed_logins_since(session, now - window, username=username.strip().lower(), ip_address=ip_address)
        >= attempts
    )


def authenticate(
    session: Session, username: str, password: str, *, now: datetime, ip_address: str | None
) -> Operator | None:
    """The operator if the password is right and the account enabled; every attempt is audited."""
    name = username.strip().lower()[:64]
    row = session.execute(select(operators).where(operators.c.username == name)).first()
    stored = row.password_hash if row is not None else _DUMMY_HASH
    try:
        good = HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        good = False
    if row is None or not good or row.disabled_at is not None:
        audit.record_action(
            session,
            actor=name or "-",
            action="login",
            target=name or "-",
            reason="",
            outcome="failed",
            ip_address=ip_address,
            now=now,
        )
        return None
    values: dict[str, object] = {"last_login_at": now}
    if HASHER.check_needs_rehash(stored):
        values["password_hash"] = HASHER.hash(password)
    session.execute(update(operators).where(operators.c.id == row.id).values(**values))
    audit.record_action(session, actor=name, action="login", target=name, reason="", ip_address=ip_address, now=now)
    return _operator(row)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(
    session: Session, operator: Operator, *, now: datetime, lifetime: timedelta, ip_address: str | None
) -> str:
    """A new session for ``operator``; returns the cookie value (shown once, stored only hashed)."""
    token = secrets.token_urlsafe(32)
    session.execute(delete(sessions).where(sessions.c.expires_at < now))
    session.execute(
        sessions.insert().values(
            token_hash=_hash(token),
            operator_id=operator.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + lifetime,
            ip_address=ip_address[:45] if ip_address else None,
        )
    )
    return token


def session_of(session: Session, token: str | None, *, now: datetime) -> ConsoleSession | None:
    if not token or len(token) > 100:
        return None
    row = session.execute(
        select(sessions.c.csrf_token, sessions.c.expires_at, operators)
        .join(operators, operators.c.id == sessions.c.operator_id)
        .where(sessions.c.token_hash == _hash(token))
    ).first()
    if row is None or row.expires_at <= now or row.disabled_at is not None:
        return None
    return ConsoleSession(_operator(row), row.csrf_token, row.expires_at)


def close_session(session: Session, token: str | None) -> None:
    if token:
        session.execute(delete(sessions).where(sessions.c.token_hash == _hash(token)))
