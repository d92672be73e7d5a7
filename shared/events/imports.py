"""An operator brings an existing customer into postpay (``postpay customers import``).

    CustomerImported --provisioner--> (the existing SolusVM 2 user tied to the WHMCS client)
        --> UserProvisioned (enrolled_at = the date billing starts) --signup, usage_collector-->

For providers moving from another post-pay setup: the customer has a WHMCS client and a SolusVM 2 user
already and never goes through the signup pages. The operator's name and reason stay in signup's
consent ledger; the event says who imported, not why.
"""

from __future__ import annotations

import uuid

from pydantic import Field

from shared.events.base import Event, UtcDateTime
from shared.events.fields import ClientId, EmailAddress, ShortText, SolusUserId


class CustomerImported(Event):
    """An operator enrolled an existing customer; billing starts at ``enrolled_at``."""

    # Written by `postpay customers import` into the signup outbox, which the signup's relay ships.
    producers = ("signup",)

    signup_id: uuid.UUID
    email: EmailAddress
    whmcs_client_id: ClientId
    solusvm_user_id: SolusUserId
    enrolled_at: UtcDateTime
    imported_by: ShortText = Field(min_length=1)
