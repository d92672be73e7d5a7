"""Events of the meter: what it saw SolusVM 2's VMs do, and how far it has looked.

The meter polls ``GET /servers`` and reads ``GET /activity_logs`` (documented calls only) and publishes
transitions, not samples: a run started, a run ended, a plan changed, a VM was deleted. Each carries the
meter's epoch (a fresh meter database is a new epoch) and the sweep that saw it, and one ``MeterSwept``
per sweep says how many transitions that sweep published, so the usage collector can tell when it holds
every transition up to an instant, and where the meter was not looking.

Each run edge has two instants: the observed one (``started_at``/``ended_at``: the logged creation or
deletion, else the poll that saw it run) and how far it could be (``not_running_at``: the last sighting
before, or the first after, that saw it not running). Billing uses the first by default; the midpoint
of the two is the estimate an operator may choose instead.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.events.base import Event, UtcDateTime, format_utc
from shared.events.fields import ShortText, SolusUserId

ServerId = int
Estimate = Literal["observed", "midpoint"]
GapPolicy = Literal["bill", "skip"]


class MeteredPlan(BaseModel):
    """A plan as the meter saw it on the server: its id, name and token prices."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: int = Field(ge=0)
    name: ShortText
    tokens_per_hour: int = Field(ge=0)
    tokens_per_month: int = Field(ge=0)


class MeterEvent(Event, abstract=True):
    producers = ("meter",)

    meter_epoch: uuid.UUID
    sweep: int = Field(ge=1, description="The sweep that saw it (1, 2, … within the epoch)")
    server_id: int = Field(gt=0)


class VmRunStarted(MeterEvent):
    """A VM started running (or was first seen running)."""

    run: int = Field(ge=1, description="The VM's runs are numbered 1, 2, … within the epoch")
    solusvm_user_id: SolusUserId
    uuid: str = Field(default="", max_length=64)
    name: ShortText
    plan: MeteredPlan
    created_at: UtcDateTime | None = None
    started_at: UtcDateTime
    not_running_at: UtcDateTime | None = Field(
        default=None, description="The latest instant it was known not to run; None when never seen before"
    )
    evidence: Literal["logged_creation", "poll"]

    @model_validator(mode="after")
    def _bracket_in_order(self) -> VmRunStarted:
        if self.not_running_at is not None and self.not_running_at > self.started_at:
            raise ValueError("not_running_at must not be after started_at")
        return self


class VmRunEnded(MeterEvent):
    """A VM stopped running, was deleted, or vanished from the list."""

    run: int = Field(ge=1)
    ended_at: UtcDateTime
    not_running_at: UtcDateTime | None = Field(default=None, description="The first instant it was known not to run")
    reason: Literal["stopped", "deleted", "vanished", "owner_changed"]

    @model_validator(mode="after")
    def _bracket_in_order(self) -> VmRunEnded:
        if self.not_running_at is not None and self.not_running_at < self.ended_at:
            raise ValueError("not_running_at must not be before ended_at")
        return self


class VmPlanChanged(MeterEvent):
    """A VM was seen on another plan (a resize) than at the sweep before."""

    plan: MeteredPlan
    seen_at: UtcDateTime


class VmDeleted(MeterEvent):
    """A VM was deleted, at the instant the activity log gives."""

    deleted_at: UtcDateTime


class MeterSwept(Event):
    producers = ("meter",)
    """One sweep of the meter is done, with how many transitions it published.

    It saw SolusVM 2 between ``started_at`` and ``finished_at`` and published ``events`` transitions."""

    meter_epoch: uuid.UUID
    sweep: int = Field(ge=1)
    started_at: UtcDateTime
    finished_at: UtcDateTime
    interval_seconds: int = Field(ge=1, le=86_400)
    events: int = Field(ge=0)
    servers: int = Field(ge=0)
    running: int = Field(ge=0)
    unreadable: int = Field(ge=0, description="List objects and log entries that could not be read")
    unattributed: int = Field(ge=0, description="Logged VMs never listed whose owner or plan is unknown")

    @model_validator(mode="after")
    def _forward(self) -> MeterSwept:
        if self.finished_at < self.started_at:
            raise ValueError("finished_at must not be before started_at")
        return self


class CoverageGap(BaseModel):
    """A stretch of the period the meter did not watch: down for more than two intervals, or not yet
    running. ``billed`` tells whether a VM seen running on both sides was billed through it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    starts_at: UtcDateTime
    ends_at: UtcDateTime
    billed: bool


class MeteringProvenance(BaseModel):
    """How a metered usage was computed: which run edges, which gap policy, and every gap."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    estimate: Estimate
    gap_policy: GapPolicy
    observed_until: UtcDateTime
    gaps: tuple[CoverageGap, ...] = ()


def describe_metering(metering: MeteringProvenance, *, max_gaps: int = 10) -> str:
    """One sentence or two for an invoice's notes: how its usage was metered, and every gap."""
    edges = "observed running time" if metering.estimate == "observed" else "midpoint estimate of each start and stop"
    text = (
        f"Usage metered by postpay from SolusVM 2's server list and activity log ({edges}), "
        f"observed until {format_utc(metering.observed_until)}."
    )
    if not metering.gaps:
        return text + " No meter gaps."
    parts = [
        f"{format_utc(gap.starts_at)} to {format_utc(gap.ends_at)} ({'billed through' if gap.billed else 'not billed'})"
        for gap in metering.gaps[:max_gaps]
    ]
    more = len(metering.gaps) - max_gaps
    return text + f" Meter gaps: {'; '.join(parts)}" + (f"; and {more} more." if more > 0 else ".")
