"""The WHMCS API's wire format: PHP form encoding, amounts, and what an answer means.

WHMCS answers HTTP 200 with ``result: error`` for most failures, 403 for IP or credential refusals,
and an HTML page (maintenance, WAF) where JSON was expected; :func:`classify` turns each into one of
the typed upstream errors before anything reads the payload.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import quote_plus

from pydantic import SecretStr

from shared.upstream.errors import (
    UpstreamAuthError,
    UpstreamError,
    UpstreamNotFound,
    UpstreamOutcomeUnknown,
    UpstreamRateLimited,
    UpstreamUnavailable,
    UpstreamValidationError,
)
from shared.upstream.http import Reply, retry_after_seconds

UPSTREAM = "whmcs"
CENT = Decimal("0.01")
FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}

# Error wording is not a stable schema (developer-docs #303): match loose, lower-cased fragments.
_AUTH_FRAGMENTS = ("authentication failed", "invalid ip", "invalid permissions", "an admin user is required")
_DUPLICATE_CLIENT_EMAIL = (
    "email address entered is not available",
    "client already exists with that email",
    "duplicate email",
)
_DUPLICATE_USER_EMAIL = "user already exists with that email"


def _contains(message: str, fragments: Sequence[str] | str) -> bool:
    lowered = message.lower()
    return any(f in lowered for f in ((fragments,) if isinstance(fragments, str) else fragments))


def is_duplicate_client_email(error: UpstreamError) -> bool:
    return isinstance(error, UpstreamValidationError) and _contains(str(error), _DUPLICATE_CLIENT_EMAIL)


def is_duplicate_user_email(error: UpstreamError) -> bool:
    return isinstance(error, UpstreamValidationError) and _contains(str(error), _DUPLICATE_USER_EMAIL)


def _form_value(value: Any) -> str:
    # Python's False would reach PHP as the truthy string "False": booleans go as 1/0.
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        raise TypeError("floats are not sent to WHMCS: use Decimal for money, int for ids")
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def encode_form(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """PHP form encoding: ``None`` left out, mappings and lists in bracket notation."""
    pairs: list[tuple[str, str]] = []
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, Mapping):
            pairs.extend((f"{name}[{key}]", _form_value(item)) for key, item in value.items())
        elif isinstance(value, (list, tuple)):
            pairs.extend((f"{name}[{index}]", _form_value(item)) for index, item in enumerate(value))
        else:
            pairs.append((name, _form_value(value)))
    return pairs


# What quote_plus leaves as it is: most names and values (ids, amounts, dates) need no quoting at all.
_FORM_SAFE = re.compile(r"[A-Za-z0-9_.~-]*")


def _form_quote(text: str) -> str:
    return text if _FORM_SAFE.fullmatch(text) else quote_plus(text)


def form_urlencode(pairs: Sequence[tuple[str, str]]) -> str:
    """``urllib.parse.urlencode`` of ``pairs``, byte for byte, without quoting what needs none."""
    return "&".join(f"{_form_quote(name)}={_form_quote(value)}" for name, value in pairs)


def format_amount(amount: Decimal) -> str:
    if not isinstance(amount, Decimal):
        raise TypeError(f"amounts are Decimal, not {type(amount).__name__}")
    return str(amount.quantize(CENT, rounding=ROUND_HALF_UP))


def classify(action: str, response: Reply, *, write: bool) -> dict[str, Any]:
    status = response.status_code
    unavailable = UpstreamOutcomeUnknown if write else UpstreamUnavailable
    if status == 429:
        raise UpstreamRateLimited(
            f"whmcs {action}: rate limited", upstream=UPSTREAM, retry_after=retry_after_seconds(response)
        )
    if status >= 500:
        raise unavailable(f"whmcs {action}: HTTP {status}", upstream=UPSTREAM, status=status)
    try:
        loaded = json.loads(response.content, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        loaded = None
    payload: dict[str, Any] | None = loaded if isinstance(loaded, dict) else None
    if status in (401, 403):
        reason = str(payload.get("message", "")) if payload else ""
        raise UpstreamAuthError(
            f"whmcs {action}: refused (HTTP {status}): {reason or 'no reason given'}",
            upstream=UPSTREAM,
            status=status,
        )
    if payload is None:
        kind = response.headers.get("content-type", "no content type")
        raise unavailable(
            f"whmcs {action}: the answer is not the API's JSON (HTTP {status}, {kind})",
            upstream=UPSTREAM,
            status=status,
        )
    if payload.get("result") == "error" or payload.get("status") == "error":
        raise application_error(action, str(payload.get("message", "")), status)
    if payload.get("result") != "success":
        if "warning" in payload:
            raise UpstreamValidationError(
                f"whmcs {action}: warning: {payload['warning']}", upstream=UPSTREAM, status=status
            )
        raise unavailable(f"whmcs {action}: JSON without a result", upstream=UPSTREAM, status=status)
    return payload


def created_id(payload: dict[str, Any], key: str, action: str) -> int:
    """The id a create returned. Success without a usable id means the object exists but we cannot
    name it: the same situation as a lost answer, so the caller reconciles by lookup."""
    value = str(payload.get(key, "")).strip()
    if not value.isascii() or not value.isdigit():
        raise UpstreamOutcomeUnknown(f"whmcs {action}: success but no {key} in the answer", upstream=UPSTREAM)
    return int(value)


def application_error(action: str, message: str, status: int) -> UpstreamError:
    text = f"whmcs {action}: {message or 'error without a message'}"
    if _contains(message, _AUTH_FRAGMENTS):
        return UpstreamAuthError(text, upstream=UPSTREAM, status=status)
    if _contains(message, "not found"):
        return UpstreamNotFound(text, upstream=UPSTREAM, status=status)
    return UpstreamValidationError(text, upstream=UPSTREAM, status=status)
