"""Hypothesis strategies for valid events, derived from the models' own fields and constraints."""

from __future__ import annotations

import types
import typing
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import reject
from hypothesis import strategies as st
from pydantic import AwareDatetime, BaseModel, ValidationError

from shared.events.base import Event

_OFFSETS = st.builds(lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(-14 * 60, 14 * 60))
_AWARE = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9998, 1, 1), timezones=_OFFSETS)


def _bounds(metadata: list[Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in metadata:
        for name in ("gt", "ge", "min_length", "max_length", "pattern", "strip_whitespace"):
            value = getattr(item, name, None)
            if value is not None:
                found[name] = value
    return found


def _string(bounds: dict[str, Any]) -> st.SearchStrategy[str]:
    low, high = bounds.get("min_length", 0), bounds.get("max_length", 60)
    if "pattern" in bounds:
        strategy = st.from_regex(bounds["pattern"], fullmatch=True)
    else:
        strategy = st.text(
            st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=low, max_size=min(high, 60)
        )
    if bounds.get("strip_whitespace"):
        strategy = strategy.map(str.strip)
    return strategy.filter(lambda text: low <= len(text) <= high)


def for_annotation(annotation: Any, metadata: list[Any] | None = None) -> st.SearchStrategy[Any]:
    if typing.get_origin(annotation) is typing.Annotated:
        inner, *extra = typing.get_args(annotation)
        return for_annotation(inner, [*(metadata or []), *extra])
    bounds = _bounds(metadata or [])
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(for_annotation(arg, metadata) for arg in typing.get_args(annotation)))
    if annotation is type(None):
        return st.none()
    if origin is typing.Literal:
        return st.sampled_from(typing.get_args(annotation))
    if origin is tuple:
        item = typing.get_args(annotation)[0]
        return st.lists(for_annotation(item), min_size=bounds.get("min_length", 0), max_size=4).map(tuple)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return valid_models(annotation)
    if annotation is AwareDatetime:
        return _AWARE
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        low = bounds["gt"] + 1 if "gt" in bounds else bounds.get("ge", -(2**31))
        return st.integers(min_value=low, max_value=2**31)
    if annotation is Decimal:
        return st.decimals(
            min_value=Decimal("-1e9"), max_value=Decimal("1e9"), places=6, allow_nan=False, allow_infinity=False
        )
    if annotation is date:
        return st.dates(min_value=date(1971, 1, 1))
    if annotation is uuid.UUID:
        return st.uuids()
    if annotation is str:
        return _string(bounds)
    raise TypeError(f"no strategy for {annotation!r}")


def _repair(model: type[BaseModel], values: dict[str, Any]) -> dict[str, Any]:
    # Cross-field rules the field constraints cannot express.
    if "starts_at" in values and "ends_at" in values and values["ends_at"] <= values["starts_at"]:
        values["ends_at"] = values["starts_at"] + timedelta(days=31)
    if "total_tokens" in values and "vms" in values:
        values["total_tokens"] = sum(vm.tokens for vm in values["vms"])
    return values


@st.composite
def _model(draw: st.DrawFn, model: type[BaseModel]) -> BaseModel:
    values = {
        name: draw(for_annotation(field.annotation, field.metadata)) for name, field in model.model_fields.items()
    }
    try:
        return model(**_repair(model, values))
    except ValidationError:
        reject()


def valid_models(model: type[BaseModel]) -> st.SearchStrategy[BaseModel]:
    return _model(model)


def valid_events(event_class: type[Event]) -> st.SearchStrategy[Event]:
    return _model(event_class)  # type: ignore[return-value]
