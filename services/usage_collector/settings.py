"""How the usage collector fans a period close out to its customers."""

from __future__ import annotations

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
