"""Typed views of SolusVM 2 answers, lenient exactly where the API's types are known to drift.

- ``billing_user_id`` arrives as an int (S1), a string (S5) or null (§2.1).
- Token prices were strings and floats in older versions (§4.1): every count here (tokens, hours, ids)
  is coerced to int from an int, an integral float or a numeric string, and refused otherwise, so a
  fractional price can never slip into an invoice unnoticed.
- Timestamps are timezone-aware UTC; a naive one (Laravel's ``Y-m-d H:i:s``) is read as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator


def coerce_int(value: Any) -> int:
    """An int from an int, an integral float or a numeric string ("5000", "5000.0"); else ValueError."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a count")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"{value!r} is not a whole number")
        return int(value)
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a number") from None
        if not number.is_finite() or number != number.to_integral_value():
            raise ValueError(f"{value!r} is not a whole number")
        return int(number)
    raise ValueError(f"{type(value).__name__} is not a count")


def coerce_billing_user_id(value: Any) -> int | str | None:
    """int for ints and numeric strings, None for null or "", any other string kept as it is."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        stripped = value.strip()
        return int(stripped) if stripped.lstrip("-").isdigit() else stripped
    return coerce_int(value)


def coerce_role_ids(value: Any) -> list[int]:
    """Role ids from ``[1, "2"]`` or ``[{"id": 1, ...}, {"id": "2"}]`` (both occur, §2.1)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError("roles must be a list")
    return [coerce_int(role.get("id") if isinstance(role, dict) else role) for role in value]


def as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


Count = Annotated[int, BeforeValidator(coerce_int)]
UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


class SolusUser(BaseModel):
    """A SolusVM 2 user (§2.1); unknown fields are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: Count
    email: str
    status: str
    roles: Annotated[list[int], BeforeValidator(coerce_role_ids)] = Field(default_factory=list)
    billing_user_id: Annotated[int | str | None, BeforeValidator(coerce_billing_user_id)] = None
    limit_group_id: Annotated[int | None, BeforeValidator(lambda v: None if v is None else coerce_int(v))] = None
    created_at: UtcDatetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _limit_group_from_object(cls, data: Any) -> Any:
        # The API shows the group as an object; a create request names it by id.
        if isinstance(data, dict) and "limit_group_id" not in data and isinstance(data.get("limit_group"), dict):
            return {**data, "limit_group_id": data["limit_group"].get("id")}
        return data


class UsagePlan(BaseModel):
    """The plan a server's window was priced at (§8.2)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: Count
    name: str
    tokens_per_hour: Count
    tokens_per_month: Count


class ServerUsage(BaseModel):
    """One server's billable running time in the window: ``tokens = min(hours × tph, tpm)``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: Count
    uuid: str
    name: str
    plan: UsagePlan
    created_at: UtcDatetime
    deleted_at: UtcDatetime | None = None
    hours: Count
    tokens: Count

    @model_validator(mode="after")
    def _priced_by_the_contract(self) -> ServerUsage:
        # §8.3 is exact; an answer breaking it would put a wrong amount on an invoice.
        if self.hours < 1:
            raise ValueError(f"server {self.id}: hours must be at least 1, got {self.hours}")
        expected = min(self.hours * self.plan.tokens_per_hour, self.plan.tokens_per_month)
        if self.tokens != expected:
            raise ValueError(f"server {self.id}: tokens {self.tokens} != min(hours × tph, tpm) = {expected}")
        return self


class PeriodUsage(BaseModel):
    """``GET /api/v1/users/{id}/usage`` (§8): every server that ran in ``[start, end)``, by id."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    user_id: Count
    start: UtcDatetime
    end: UtcDatetime
    servers: list[ServerUsage]
    total_tokens: Count

    @model_validator(mode="before")
    @classmethod
    def _flatten_period(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("period"), dict):
            period = data["period"]
            return {**data, "start": period.get("from"), "end": period.get("to")}
        return data

    @model_validator(mode="after")
    def _total_is_the_sum(self) -> PeriodUsage:
        if self.total_tokens != sum(server.tokens for server in self.servers):
            raise ValueError("total_tokens is not the sum of the servers' tokens")
        return self
