"""Server-to-server authentication of the WHMCS hook (HMAC-SHA256 with a shared secret). Pure, no I/O.

The hook sends ``X-Postpay-Timestamp`` (Unix seconds), ``X-Postpay-Nonce`` (16 to 128 random
characters of ``[A-Za-z0-9_-]``, new for every request) and ``X-Postpay-Signature``:

    hex(HMAC-SHA256(secret, "<timestamp>.<nonce>.<client id>.<purpose>"))

``purpose`` is ``panel`` (render the panel), ``sso`` (mint a login link) or ``finish`` (mint a link
to the terms for a customer who never accepted them), so a signature captured from a panel request
cannot mint either link. A timestamp outside the freshness window is refused,
and the signup service remembers every nonce for that window (``store.remember_nonce``), so a
captured request cannot be sent again either.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime
from typing import Literal

PanelPurpose = Literal["panel", "sso", "finish"]
NONCE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")


class PanelAuthError(Exception):
    """The request is not from the WHMCS hook (or no longer fresh); ``reason`` is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def panel_signature(secret: str, timestamp: int, nonce: str, client_id: int, purpose: PanelPurpose) -> str:
    message = f"{timestamp}.{nonce}.{client_id}.{purpose}".encode("ascii")
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def check_panel_request(
    secret: str,
    *,
    timestamp: str | None,
    nonce: str | None,
    signature: str | None,
    client_id: int,
    purpose: PanelPurpose,
    now: datetime,
    max_skew_seconds: int,
) -> None:
    """Raise ``PanelAuthError`` unless the signature is right and the timestamp is fresh. Whether the
    nonce was seen before is the caller's check, after this one (only signed nonces are remembered)."""
    if not timestamp or not signature or not nonce:
        raise PanelAuthError("missing X-Postpay-Timestamp, X-Postpay-Nonce or X-Postpay-Signature")
    if not NONCE.match(nonce):
        raise PanelAuthError("X-Postpay-Nonce must be 16 to 128 characters of A-Z, a-z, 0-9, _ and -")
    if not signature.isascii() or len(signature) > 128:
        raise PanelAuthError("bad signature")
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise PanelAuthError("X-Postpay-Timestamp must be Unix seconds")
    sent_at = int(timestamp)
    if abs(now.timestamp() - sent_at) > max_skew_seconds:
        raise PanelAuthError("stale or future timestamp")
    expected = panel_signature(secret, sent_at, nonce, client_id, purpose)
    if not hmac.compare_digest(expected, signature.strip().lower()):
        raise PanelAuthError("bad signature")
