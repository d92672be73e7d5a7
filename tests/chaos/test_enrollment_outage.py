"""Enrollment while RabbitMQ is down: 200 people register during the outage. Every registration is
accepted (the web writes the outbox, not the broker), every one is delivered once the broker is back,
and every customer ends up with exactly one WHMCS client and one SolusVM 2 user."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from services.provisioner.store import customers as provisioned
from services.signup import schema
from shared.bus.rabbit import RabbitBus
from shared.db import Database
from tests.support.bus_helpers import wait_until
from tests.support.enrollment import Enrollment, signup_settings, unique_email
from tests.support.private_broker import PrivateBroker
from tests.support.system import Upstreams

# As long as the other chaos tests may take: under ./scripts/test's three workers it runs beside one of them
# (tests/support/schedule.py), and on two cores so loaded it took 290 s. A stall still fails sooner, on
# the waits below.
pytestmark = [pytest.mark.rabbit, pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(600)]

REGISTRATIONS = 200


def test_200_registrations_during_a_broker_outage_are_all_provisioned_exactly_once(
    private_broker_up: PrivateBroker, private_rabbit_bus: RabbitBus, postgres_database: Database
) -> None:
    settings = signup_settings(registrations_per_ip=10 * REGISTRATIONS)
    with (
        Upstreams() as upstreams,
        Enrollment(upstreams, private_rabbit_bus, postgres_database, settings=settings).start() as enrollment,
    ):
        private_broker_up.stop_app()
        wait_until(
            lambda: not enrollment.runtime.consumer.connected.is_set(),
            timeout=30,
            what="the consumer to notice the outage",
        )

        browsers = {
            unique_email("outage"): TestClient(enrollment.app, base_url=settings.public_url, follow_redirects=False)
            for _ in range(REGISTRATIONS)
        }
        refused = {
            email: response.status_code
            for email, browser in browsers.items()
            if (response := enrollment.register(email, client=browser)).status_code != 303
        }
        assert not refused, f"registrations refused during the outage: {refused}"
        time.sleep(1.0)  # the relay tries, and fails, to publish
        with postgres_database.transaction() as session:
            waiting = enrollment.signup.outbox.backlog(session)
        assert waiting == REGISTRATIONS, "every registration waits in the outbox while the broker is down"
        assert upstreams.whmcs.calls["AddClient"] == 0 and not upstreams.smtp.messages

        private_broker_up.start_app()
        links = {email: enrollment.verification_links(email, timeout=120)[0] for email in browsers}
        for email, browser in browsers.items():
            assert enrollment.open_link(links[email], browser).status_code == 303, email
            assert enrollment.accept_terms(browser).status_code == 303, email
        wait_until(
            lambda: enrolled_count(postgres_database) == REGISTRATIONS,
            timeout=120,
            what=f"{REGISTRATIONS} customers enrolled",
        )
        wait_until(lambda: backlog(enrollment) == 0, timeout=30, what="outboxes drained")
        for browser in browsers.values():
            browser.close()

        clients = Counter(c.email.lower() for c in upstreams.whmcs.state.clients.values())
        users = Counter(u.email.lower() for u in upstreams.solusvm_state.users.values())
        for email in browsers:
            assert (clients[email], users[email]) == (1, 1), (
                f"{email}: {clients[email]} WHMCS clients, {users[email]} users"
            )
        assert upstreams.whmcs.calls["AddClient"] == REGISTRATIONS
        with postgres_database.transaction() as session:
            assert session.execute(select(func.count()).select_from(provisioned)).scalar_one() == REGISTRATIONS
        parked = {name: n for name, n in private_rabbit_bus.parking_lot().queues().items() if n}
        assert not parked, f"parked during the outage: {parked}"


def enrolled_count(db: Database) -> int:
    with db.transaction() as session:
        return int(
            session.execute(
                select(func.count())
                .select_from(schema.signups)
                .where(schema.signups.c.stage == schema.Stage.ENROLLED.value)
            ).scalar_one()
        )


def backlog(enrollment: Enrollment) -> int:
    with enrollment.db.transaction() as session:
        return enrollment.signup.outbox.backlog(session) + enrollment.provisioner.outbox.backlog(session)
