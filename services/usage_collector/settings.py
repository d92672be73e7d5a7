"""How the usage collector fans a period close out to its customers, and where usage comes from."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings

from shared.settings import SETTINGS_CONFIG


class UsageCollectorSettings(BaseSettings):
    model_config = SETTINGS_CONFIG

    usage_fanout_chunk_size: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description=(
            "Customers per fan-out transaction when a period closes: each chunk's work items and the "
            "resume point commit together, so memory stays flat and a crash resumes after the last chunk."
        ),
    )
    usage_source: Literal["endpoint", "meter"] = Field(
        default="endpoint",
        description=(
            "Where a period's usage comes from: 'endpoint' asks SolusVM 2's period-usage endpoint "
            "(POSTPAY_SOLUSVM_USAGE_PATH, this project's own contract); 'meter' computes it from what "
            "`postpay run meter` observed through documented calls only. See docs/usage-sources.md."
        ),
    )
    meter_gap_policy: Literal["bill", "skip"] = Field(
        default="bill",
        description=(
            "When the meter was down for more than two intervals, a VM seen running before and after is "
            "billed through the gap ('bill') or not ('skip'). Either way the gap is reported."
        ),
    )
    meter_estimate: Literal["observed", "midpoint"] = Field(
        default="observed",
        description=(
            "Run edges billed from the meter: 'observed' never bills more running time than was observed "
            "(no customer is overcharged); 'midpoint' takes the middle of each start's and stop's bracket."
        ),
    )
