"""Signed tokens: email and SSO links, the session cookie, CSRF tokens. Pure, no I/O.

A token is ``<payload>.<mac>``, both base64url without padding. The MAC is HMAC-SHA256 under a key
derived from the service secret *and the token's purpose*, so a token minted for one purpose (an SSO
link) is worthless as another (a verification link or a cookie). Whether a link was already used is
the database's business; a token only proves that postpay minted it and until when it is valid.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

MAX_TOKEN_LENGTH = 512


class BadToken(Exception):
    """The token was not minted by this service for this purpose (tampered, truncated, foreign)."""


class ExpiredToken(Exception):
    """The token is genuine but its lifetime is over."""


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise BadToken("not base64url") from None
    # The decoder ignores the unused low bits of the last character, so up to 16 spellings decode to
    # the same bytes; only the one postpay writes is accepted: a token has exactly one form.
    if _b64encode(raw) != text:
        raise BadToken("not the canonical base64url form")
    return raw


class Signer:
    """HMAC-SHA256 signing with one key per purpose, derived from the service secret."""

    def __init__(self, secret: str | bytes) -> None:
        self._secret = secret.encode("utf-8") if isinstance(secret, str) else secret
        if len(self._secret) < 16:
            raise ValueError("the signing secret must be at least 16 bytes")

    def _key(self, purpose: str) -> bytes:
        return hmac.new(self._secret, f"postpay.signup/{purpose}".encode(), hashlib.sha256).digest()

    def mac(self, purpose: str, payload: bytes) -> bytes:
        return hmac.new(self._key(purpose), payload, hashlib.sha256).digest()

    def sign(self, purpose: str, payload: bytes) -> str:
        return f"{_b64encode(payload)}.{_b64encode(self.mac(purpose, payload))}"

    def unsign(self, purpose: str, token: str) -> bytes:
        if not token or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
            raise BadToken("malformed token")
        payload_text, _, mac_text = token.partition(".")
        if not payload_text or not mac_text:
            raise BadToken("malformed token")
        payload, mac = _b64decode(payload_text), _b64decode(mac_text)
        if not hmac.compare_digest(mac, self.mac(purpose, payload)):
            raise BadToken("signature mismatch")
        return payload


# Links ---------------------------------------------------------------------------------------------

LinkPurpose = Literal["verify", "sso", "finish"]
_LINK = struct.Struct(">16sQ")  # link id, expiry (Unix seconds)


@dataclass(frozen=True)
class LinkClaims:
    link_id: uuid.UUID
    expires_at: datetime

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at


def mint_link(signer: Signer, purpose: LinkPurpose, link_id: uuid.UUID, expires_at: datetime) -> str:
    return signer.sign(purpose, _LINK.pack(link_id.bytes, int(expires_at.timestamp())))


def read_link(signer: Signer, purpose: LinkPurpose, token: str) -> LinkClaims:
    """The link's claims, or ``BadToken`` if postpay did not mint it for ``purpose``.

    Expiry is the caller's check (``claims.expired(now)``): an expired link is still worth reading,
    e.g. to offer its owner a fresh one.
    """
    payload = signer.unsign(purpose, token)
    if len(payload) != _LINK.size:
        raise BadToken("wrong payload size")
    raw_id, expires = _LINK.unpack(payload)
    return LinkClaims(uuid.UUID(bytes=raw_id), datetime.fromtimestamp(expires, UTC))


# Session cookie ------------------------------------------------------------------------------------

SessionLevel = Literal["registered", "verified", "accepted"]
_SESSION = struct.Struct(">16s16sQB")  # subject id, session nonce, issued at, level
_LEVELS: tuple[SessionLevel, ...] = ("registered", "verified", "accepted")


@dataclass(frozen=True)
class BrowserSession:
    """Who the browser is in the signup journey.

    ``registered``: it submitted the form; ``subject_id`` is that registration (it may watch its
    progress, and confirm the emailed link without typing the password). ``verified``: it confirmed a
    verification link, proving it reads the mailbox; ``subject_id`` is the signup (it may accept the
    terms). ``accepted``: it accepted the terms; it may log in to SolusVM 2 from the signup site for a
    short while after ``issued_at``. ``nonce`` identifies this browser session; SSO links minted on the
    web are bound to it.
    """

    subject_id: uuid.UUID
    level: SessionLevel
    nonce: bytes
    issued_at: datetime

    @classmethod
    def start(cls, subject_id: uuid.UUID, level: SessionLevel, now: datetime) -> BrowserSession:
        return cls(subject_id, level, secrets.token_bytes(16), now)

    @property
    def verified(self) -> bool:
        return self.level in ("verified", "accepted")

    @property
    def signup_id(self) -> uuid.UUID | None:
        """The signup of a browser that proved it reads the mailbox; None before that."""
        return self.subject_id if self.verified else None

    @property
    def registration_id(self) -> uuid.UUID | None:
        return self.subject_id if self.level == "registered" else None

    @property
    def binding(self) -> str:
        """What an SSO link stores to be bound to this session (a hash: the nonce never leaves the cookie)."""
        return hashlib.sha256(self.nonce).hexdigest()


def encode_session(signer: Signer, session: BrowserSession) -> str:
    payload = _SESSION.pack(
        session.subject_id.bytes, session.nonce, int(session.issued_at.timestamp()), _LEVELS.index(session.level)
    )
    return signer.sign("session", payload)


def decode_session(signer: Signer, cookie: str, now: datetime, max_age_seconds: float) -> BrowserSession:
    payload = signer.unsign("session", cookie)
    if len(payload) != _SESSION.size:
        raise BadToken("wrong payload size")
    raw_id, nonce, issued, level = _SESSION.unpack(payload)
    if level >= len(_LEVELS):
        raise BadToken("unknown session level")
    issued_at = datetime.fromtimestamp(issued, UTC)
    if (now - issued_at).total_seconds() > max_age_seconds:
        raise ExpiredToken("session expired")
    return BrowserSession(uuid.UUID(bytes=raw_id), _LEVELS[level], nonce, issued_at)


# CSRF ----------------------------------------------------------------------------------------------


def new_csrf_secret() -> str:
    """The random value kept in the CSRF cookie."""
    return secrets.token_urlsafe(24)


def csrf_token(signer: Signer, csrf_secret: str) -> str:
    """The value a form carries: bound to the browser's CSRF cookie, useless without it."""
    return _b64encode(signer.mac("csrf", csrf_secret.encode("utf-8")))


def csrf_matches(signer: Signer, csrf_secret: str | None, submitted: str | None) -> bool:
    if not csrf_secret or not submitted or len(submitted) > MAX_TOKEN_LENGTH or not submitted.isascii():
        return False
    return hmac.compare_digest(csrf_token(signer, csrf_secret), submitted)
