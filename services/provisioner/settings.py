"""Settings of the provisioner (``POSTPAY_*`` variables; see ``shared.settings``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode

from shared.settings import SETTINGS_CONFIG


class ProvisionerSettings(BaseSettings):
    model_config = SETTINGS_CONFIG

    solusvm_limit_group_id: int | None = Field(
        default=None, gt=0, description="SolusVM 2 limit group of new users (unset: the panel's default)."
    )
    solusvm_role_ids: Annotated[list[int], NoDecode] = Field(
        default=[2], description="SolusVM 2 role ids of new users, comma-separated (2 is the built-in Client role)."
    )

    @field_validator("solusvm_role_ids", mode="before")
    @classmethod
    def _split_roles(cls, value: object) -> object:
        if isinstance(value, str):
            return [int(part) for part in value.split(",") if part.strip()]
        return value
