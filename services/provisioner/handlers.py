"""The provisioner's handler: a customer who accepted the terms gets a SolusVM 2 user."""

from __future__ import annotations

from typing import Any

from services.provisioner import store
from services.provisioner.passwords import random_password
from services.provisioner.settings import ProvisionerSettings
from services.provisioner.store import Customer
from shared.bus.processing import HandlerContext
from shared.errors import PermanentError
from shared.events.enrollment import TermsAccepted, UserProvisioned


def provision_user(event: TermsAccepted, ctx: HandlerContext, *, solusvm: Any, settings: ProvisionerSettings) -> None:
    """Find or create the SolusVM 2 user with exactly this email, tie it to the WHMCS client, and say so.

    Safe to repeat at any point: the lookup by email finds a user a lost earlier attempt created, and a
    customer already on record is announced again with the same ids.
    """
    with ctx.separate_transaction() as session:
        known = store.get_customer(session, event.whmcs_client_id)
    if known is None:
        user = solusvm.find_or_create_user(
            event.email,
            random_password(),
            billing_user_id=event.whmcs_client_id,
            limit_group_id=settings.solusvm_limit_group_id,
            roles=list(settings.solusvm_role_ids) or None,
        )
        with ctx.separate_transaction() as session:
            owner = store.customer_of_user(session, user.id)
        if owner is not None:
            raise PermanentError(
                f"SolusVM 2 user {user.id} ({event.email}) is already provisioned for WHMCS client "
                f"{owner.whmcs_client_id}, not {event.whmcs_client_id}"
            )
        if user.billing_user_id != event.whmcs_client_id:
            ctx.log.warning(
                "existing SolusVM 2 user had another billing id; tying it to this WHMCS client",
                solusvm_user_id=user.id, previous_billing_user_id=user.billing_user_id,
                whmcs_client_id=event.whmcs_client_id,
            )  # fmt: skip
            solusvm.patch_user(user.id, billing_user_id=event.whmcs_client_id)
        known = Customer(event.whmcs_client_id, user.id, event.email, event.signup_id, ctx.now())
        store.add_customer(ctx.session, known)
        ctx.log.info("SolusVM 2 user ready", whmcs_client_id=known.whmcs_client_id, solusvm_user_id=known.solusvm_user_id)
    ctx.emit(
        UserProvisioned(
            signup_id=event.signup_id,
            email=event.email,
            whmcs_client_id=known.whmcs_client_id,
            solusvm_user_id=known.solusvm_user_id,
            enrolled_at=known.provisioned_at,
        ),
        key="provisioned",
    )
