"""Constrained field types that events share."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from shared.periods import PERIOD_PATTERN

EmailAddress = Annotated[
    str, StringConstraints(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$", strip_whitespace=True)
]
PeriodKey = Annotated[str, StringConstraints(pattern=PERIOD_PATTERN)]
TimeZoneName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
ClientId = Annotated[int, Field(gt=0, description="WHMCS client id")]
SolusUserId = Annotated[int, Field(gt=0, description="SolusVM 2 user id")]
ShortText = Annotated[str, StringConstraints(max_length=200)]
