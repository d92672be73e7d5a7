"""Enrollment events that do not match the signup's own record (issue 16), on the real broker and
PostgreSQL: the signup service believes its database, not the event.

A ``UserProvisioned`` forged for a signup that never got to the provisioning stage (or for an email
that is not the signup's, or a SolusVM 2 user that is not the customer's) moves nothing and mails
nothing; a genuine one delivered again sends no second welcome. A forged ``EmailVerified`` for an
unverified signup creates no WHMCS client and unlocks nothing.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update

from services.signup import schema
from shared.events.enrollment import EmailVerified, UserProvisioned
from tests.support.access import real_enrollment  # noqa: F401 - fixtures used by name
from tests.support.bus_helpers import publish, wait_until
from tests.support.enrollment import Enrollment, clean_upstreams, clock, is_welcome, unique_email, upstreams  # noqa: F401 - fixtures used by name

pytestmark = [pytest.mark.rabbit, pytest.mark.postgres]


def handled(enrollment: Enrollment, queue: str, event_id: uuid.UUID) -> bool:
    """The event was handled (its inbox row committed) or parked by ``queue``."""
    inbox = enrollment.signup.inbox.table
    with enrollment.db.transaction() as session:
        row = session.execute(
            select(inbox.c.event_id).where(inbox.c.handler == queue, inbox.c.event_id == event_id)
        ).first()
    if row is not None:
        return True
    lot = enrollment.bus.parking_lot()
    name = enrollment.bus.naming.parking_lot(queue)
    return (
        any(message.message_id == str(event_id) for message in lot.list(name, 100)) if lot.queues().get(name) else False
    )


def welcomes(enrollment: Enrollment, email: str) -> int:
    return len([m for m in enrollment.upstreams.smtp.to(email) if is_welcome(m)])


def forged_provisioned(signup_id: uuid.UUID, email: str, client_id: int = 4242, user_id: int = 1) -> UserProvisioned:
    return UserProvisioned(
        signup_id=signup_id,
        email=email,
        whmcs_client_id=client_id,
        solusvm_user_id=user_id,
        enrolled_at=datetime.now(UTC),
    )


def test_a_forged_user_provisioned_for_an_unverified_signup_mails_nothing_and_moves_nothing(
    real_enrollment: Enrollment,
) -> None:
    email = unique_email()
    real_enrollment.register(email)
    real_enrollment.verification_links(email)
    signup = real_enrollment.signup_row(email)
    assert signup is not None
    envelope = publish(real_enrollment.bus, forged_provisioned(signup.id, email))
    wait_until(
        lambda: handled(real_enrollment, "signup.complete_enrollment", envelope.event_id),
        what="the forged event handled",
    )
    assert real_enrollment.stage(email) == "awaiting_verification"
    assert welcomes(real_enrollment, email) == 0


def test_a_forged_user_provisioned_for_an_unknown_signup_or_another_email_mails_nothing(
    real_enrollment: Enrollment,
) -> None:
    email = unique_email()
    unknown = publish(real_enrollment.bus, forged_provisioned(uuid.uuid4(), email))
    wait_until(
        lambda: handled(real_enrollment, "signup.complete_enrollment", unknown.event_id),
        what="the forged event handled",
    )
    # A real signup whose SolusVM 2 user is being created, and events naming another email, another
    # WHMCS client, or a SolusVM 2 user that is not the customer's.
    victim = unique_email("victim")
    real_enrollment.register(victim)
    (link,) = real_enrollment.verification_links(victim)
    real_enrollment.open_link(link)
    real_enrollment.wait_for_terms()
    with real_enrollment.db.transaction() as session:  # the terms accepted, the provisioner not done yet
        session.execute(update(schema.signups).where(schema.signups.c.email == victim).values(stage="provisioning"))
    signup = real_enrollment.signup_row(victim)
    assert signup is not None and signup.whmcs_client_id is not None
    for forged in (
        forged_provisioned(signup.id, email, signup.whmcs_client_id),
        forged_provisioned(signup.id, victim, signup.whmcs_client_id + 1),
        forged_provisioned(signup.id, victim, signup.whmcs_client_id, user_id=1),
    ):  # not the customer's user
        envelope = publish(real_enrollment.bus, forged)
        # The predicate runs before the loop moves on.
        wait_until(lambda: handled(real_enrollment, "signup.complete_enrollment", envelope.event_id), what="handled")  # noqa: B023
    assert real_enrollment.stage(victim) == "provisioning"
    assert welcomes(real_enrollment, email) == welcomes(real_enrollment, victim) == 0


def test_a_genuine_user_provisioned_delivered_twice_sends_one_welcome(real_enrollment: Enrollment) -> None:
    email = unique_email()
    real_enrollment.enroll(email)
    real_enrollment.upstreams.smtp.wait_for(to=email, matching=is_welcome)
    signup = real_enrollment.signup_row(email)
    assert signup is not None and signup.whmcs_client_id and signup.solusvm_user_id and signup.enrolled_at
    again = UserProvisioned(
        signup_id=signup.id,
        email=email,
        whmcs_client_id=signup.whmcs_client_id,
        solusvm_user_id=signup.solusvm_user_id,
        enrolled_at=signup.enrolled_at,
    )
    envelope = publish(real_enrollment.bus, again)
    wait_until(lambda: handled(real_enrollment, "signup.complete_enrollment", envelope.event_id), what="handled")
    assert welcomes(real_enrollment, email) == 1 and real_enrollment.stage(email) == "enrolled"


def test_a_forged_email_verified_for_an_unverified_signup_creates_no_client_and_unlocks_nothing(
    real_enrollment: Enrollment,
) -> None:
    email = unique_email()
    real_enrollment.register(email)
    real_enrollment.verification_links(email)
    signup = real_enrollment.signup_row(email)
    assert signup is not None
    forged = EmailVerified(signup_id=signup.id, email=email, whmcs_client_id=4242, verified_at=datetime.now(UTC))
    envelope = publish(real_enrollment.bus, forged)
    queue = next(s.queue for s in real_enrollment.signup.subscriptions if EmailVerified in s.events)
    wait_until(lambda: handled(real_enrollment, queue, envelope.event_id), what="the forged event handled")
    assert real_enrollment.stage(email) == "awaiting_verification"
    assert real_enrollment.whmcs_clients(email) == []
