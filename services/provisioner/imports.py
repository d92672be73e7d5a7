"""CustomerImported → the existing SolusVM 2 user tied to the WHMCS client → UserProvisioned.

An imported customer already has a SolusVM 2 user: nothing is created. The user must exist and be
nobody else's; its billing id is set to the client when it differs, as a new customer's would be. The
customer is announced enrolled at the date the operator gave, so the usage collector bills from there.
"""

from __future__ import annotations

from typing import Any

from services.provisioner import store
from services.provisioner.store import Customer
from shared.bus.processing import HandlerContext
from shared.errors import PermanentError
from shared.events.enrollment import UserProvisioned
from shared.events.imports import CustomerImported
from shared.upstream.errors import UpstreamNotFound


def adopt_user(event: CustomerImported, ctx: HandlerContext, *, solusvm: Any) -> None:
    with ctx.separate_transaction() as session:
        known = store.get_customer(session, event.whmcs_client_id)
        owner = store.customer_of_user(session, event.solusvm_user_id)
    if known is not None and known.solusvm_user_id != event.solusvm_user_id:
        raise PermanentError(f"WHMCS client {event.whmcs_client_id} is already enrolled with SolusVM 2 user "
                             f"{known.solusvm_user_id}, not {event.solusvm_user_id}")
    if owner is not None and owner.whmcs_client_id != event.whmcs_client_id:
        raise PermanentError(f"SolusVM 2 user {event.solusvm_user_id} is already enrolled for WHMCS client "
                             f"{owner.whmcs_client_id}, not {event.whmcs_client_id}")
    if known is None:
        try:
            user = solusvm.get_user(event.solusvm_user_id)
        except UpstreamNotFound as exc:
            raise PermanentError(f"SolusVM 2 has no user {event.solusvm_user_id}") from exc
        if user.billing_user_id != event.whmcs_client_id:
            ctx.log.warning("imported SolusVM 2 user had another billing id; tying it to this WHMCS client",
                            solusvm_user_id=user.id, previous_billing_user_id=user.billing_user_id,
                            whmcs_client_id=event.whmcs_client_id)  # fmt: skip
            solusvm.patch_user(user.id, billing_user_id=event.whmcs_client_id)
        known = Customer(event.whmcs_client_id, user.id, user.email, event.signup_id, event.enrolled_at)
        store.add_customer(ctx.session, known)
        ctx.log.info("imported customer tied to its SolusVM 2 user", whmcs_client_id=known.whmcs_client_id,
                     solusvm_user_id=known.solusvm_user_id, imported_by=event.imported_by)  # fmt: skip
    ctx.emit(
        UserProvisioned(signup_id=event.signup_id, email=event.email, whmcs_client_id=known.whmcs_client_id,
                        solusvm_user_id=known.solusvm_user_id, enrolled_at=known.provisioned_at),
        key="provisioned",
    )
