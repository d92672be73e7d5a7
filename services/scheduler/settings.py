"""When billing periods close: the billing time zone, the daily tick and where a fresh install starts."""

from __future__ import annotations

from datetime import time

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from shared.periods import PERIOD_PATTERN, zone
from shared.settings import SETTINGS_CONFIG


class SchedulerSettings(BaseSettings):
    model_config = SETTINGS_CONFIG

    billing_timezone: str = Field(
        default="UTC",
        description=(
            "IANA time zone the billing months are calendar months in (e.g. Europe/Berlin): a period is "
            "[1st 00:00, next 1st 00:00) local time."
        ),
    )
    scheduler_run_at: time = Field(
        default=time(0, 15),
        description=(
            "Local time (billing time zone) of the daily tick that closes every month that has ended, "
            "HH:MM; a little after midnight, so the last minutes of the month are metered."
        ),
    )
    scheduler_first_period: str | None = Field(
        default=None,
        pattern=PERIOD_PATTERN,
        description=(
            "First month a fresh install closes, e.g. 2026-09. Unset: the month the scheduler first runs in, "
            "so months billed before postpay was installed are never billed again."
        ),
    )
    scheduler_poll_seconds: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Longest sleep between two looks at the clock (also the retry delay after a failed tick).",
    )

    @field_validator("billing_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        zone(value)
        return value
