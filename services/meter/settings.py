"""How often and how the meter polls SolusVM 2."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from shared.settings import SETTINGS_CONFIG


class MeterSettings(BaseSettings):
    model_config = SETTINGS_CONFIG

    meter_interval_seconds: int = Field(
        default=60,
        ge=1,
        le=3600,
        description=(
            "Seconds between two sweeps of the meter (GET /servers and the activity log). A run's start or "
            "stop is known to within one interval; a sweep later than two intervals is a gap."
        ),
    )
    meter_page_size: int = Field(
        default=100,
        ge=1,
        le=1000,
        description="per_page the meter asks for when it lists servers and activity logs (a panel may ignore it).",
    )
    meter_page_concurrency: int = Field(
        default=4,
        ge=1,
        le=32,
        description=(
            "Pages of GET /servers the meter asks for at once, once the first page told how many there are "
            "(a sweep over 100,000 servers is mostly waiting for the panel)."
        ),
    )
    meter_max_pages: int = Field(
        default=10_000,
        ge=1,
        description="Most pages one list may take in a sweep; a panel that pages on past it fails the sweep.",
    )
