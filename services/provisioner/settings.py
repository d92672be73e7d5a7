"""Settings of the provisioner (``POSTPAY_*`` variables; see ``shared.settings``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from shared.branding import BrandSettings
from shared.customer_terms import check_invoice_url, grace_days_field, invoice_url_field
from shared.settings import SETTINGS_CONFIG


def _comma_separated_ints(value: object) -> object:
    if isinstance(value, str):
        return [int(part) for part in value.split(",") if part.strip()]
    return value


class ProvisionerSettings(BrandSettings):
    model_config = SETTINGS_CONFIG

    solusvm_limit_group_id: int | None = Field(
        default=None, gt=0, description="SolusVM 2 limit group of new users (unset: the panel's default)."
    )
    solusvm_role_ids: Annotated[list[int], NoDecode] = Field(
        default=[2], description="SolusVM 2 role ids of new users, comma-separated (2 is the built-in Client role)."
    )
    accounts_grace_days: int = grace_days_field()
    accounts_never_suspend: Annotated[list[int], NoDecode] = Field(
        default=[],
        description=(
            "WHMCS client ids never suspended automatically, comma-separated (their overdue invoices are "
            "still reported; a closed client is still locked)."
        ),
    )
    accounts_fanout_chunk_size: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description="Standing checks written per transaction when an accounts sync fans out.",
    )
    accounts_invoice_url: str = invoice_url_field()

    @field_validator("solusvm_role_ids", "accounts_never_suspend", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        return _comma_separated_ints(value)

    @field_validator("accounts_invoice_url")
    @classmethod
    def _has_invoice_placeholder(cls, value: str) -> str:
        return check_invoice_url(value)

    def invoice_url(self, invoice_id: int) -> str:
        return self.accounts_invoice_url.replace("{invoice_id}", str(invoice_id))
