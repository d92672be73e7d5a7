"""The simulator state as JSON, so a demo can stop and start again where it was.

Decimals are written as strings (never floats) and times as ISO 8601 with their offset. Loading
rebuilds the indexes, so a loaded state is as fast as one built through the API.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from simulators.whmcs.state import (
    Client,
    Currency,
    CustomFieldDefinition,
    EmailTemplate,
    Invoice,
    SentEmail,
    SsoGrant,
    TaxSettings,
    Transaction,
    User,
    WhmcsState,
)

FORMAT_VERSION = 1


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def _convert(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _convert(options[0], value)
    if hint is Decimal:
        return Decimal(str(value))
    if hint is datetime:
        return datetime.fromisoformat(value)
    if hint is date:
        return date.fromisoformat(value)
    if dataclasses.is_dataclass(hint):
        return _load(hint, value)
    if origin is list:
        (item_hint,) = typing.get_args(hint)
        return [_convert(item_hint, v) for v in value]
    if origin is tuple:
        return tuple(_convert(h, v) for h, v in zip(typing.get_args(hint), value, strict=True))
    if origin is dict:
        key_hint, value_hint = typing.get_args(hint)
        return {_convert(key_hint, k): _convert(value_hint, v) for k, v in value.items()}
    if hint is int:
        return int(value)
    return value


def _load(cls: Any, data: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{name: _convert(hints[name], data[name]) for name in names if name in data})


def dump_state(state: WhmcsState) -> dict[str, Any]:
    with state.lock:
        return {
            "format": FORMAT_VERSION,
            "currencies": [to_jsonable(c) for c in state.currencies.values()],
            "tax": to_jsonable(state.tax),
            "date_format": state.date_format,
            "custom_fields": [to_jsonable(f) for f in state.custom_fields.values()],
            "templates": [to_jsonable(t) for t in state.templates.values()],
            "clients": [to_jsonable(c) for c in state.clients.values()],
            "users": [to_jsonable(u) for u in state.users.values()],
            "invoices": [to_jsonable(i) for i in state.invoices.values()],
            "transactions": [to_jsonable(t) for t in state.transactions.values()],
            "emails": [to_jsonable(e) for e in state.emails],
            "sso_grants": [to_jsonable(g) for g in state.sso_grants.values()],
            "next_ids": dict(state.next_ids),
        }


def load_state(state: WhmcsState, data: dict[str, Any]) -> None:
    """Replace ``state``'s content with ``data`` (as written by :func:`dump_state`)."""
    if data.get("format") != FORMAT_VERSION:
        raise ValueError(f"unsupported WHMCS simulator state format {data.get('format')!r}")
    with state.lock:
        state.reset()
        state.currencies = {c.id: c for c in (_load(Currency, c) for c in data["currencies"])}
        state.tax = _load(TaxSettings, data["tax"])
        state.date_format = data.get("date_format", state.date_format)
        state.custom_fields = {
            f.id: f for f in (_load(CustomFieldDefinition, f) for f in data.get("custom_fields", []))
        }
        state.templates = {t.name.lower(): t for t in (_load(EmailTemplate, t) for t in data["templates"])}
        for item in data["users"]:
            state.add_user(_load(User, item))
        for item in data["clients"]:
            state.add_client(_load(Client, item))
        for item in data["invoices"]:
            state.add_invoice(_load(Invoice, item))
        for item in data["transactions"]:
            state.add_transaction(_load(Transaction, item))
        state.emails.extend(_load(SentEmail, e) for e in data["emails"])
        state.sso_grants = {g.token: g for g in (_load(SsoGrant, g) for g in data.get("sso_grants", []))}
        state.next_ids.update({k: int(v) for k, v in data["next_ids"].items()})


def save_file(state: WhmcsState, path: Path) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(dump_state(state), ensure_ascii=False), encoding="utf-8")
    temporary.replace(path)


def load_file(state: WhmcsState, path: Path) -> None:
    load_state(state, json.loads(path.read_text(encoding="utf-8")))
