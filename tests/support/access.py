"""The enrollment services on the real broker and PostgreSQL, for the access-security tests (an attacker's
attempts must fail where it counts: on the deployment's own transport and database)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from services.signup import schema
from shared.bus.rabbit import RabbitBus
from shared.clock import ManualClock
from shared.db import Database
from tests.support.enrollment import Enrollment, path_of
from tests.support.system import Upstreams

ATTACKER_PASSWORD = "Grey-Lantern-9472!"
VICTIM_PASSWORD = "Quiet-Harbour-3816?"


@pytest.fixture
def real_enrollment(
    clean_upstreams: Upstreams, rabbit_bus: RabbitBus, postgres_database: Database, clock: ManualClock
) -> Iterator[Enrollment]:
    with Enrollment(clean_upstreams, rabbit_bus, postgres_database, clock=clock).start() as running:
        yield running


def starts_session(response: Any) -> bool:
    return "postpay_session" in response.headers.get("set-cookie", "")


def journey_state(enrollment: Enrollment) -> tuple[object, ...]:
    """What opening or pressing a link could change: links used, stages, consents, events, SolusVM 2 tokens."""
    with enrollment.db.transaction() as session:
        links = session.execute(select(schema.links.c.id, schema.links.c.used_at)).all()
        stages = session.execute(select(schema.signups.c.id, schema.signups.c.stage)).all()
    return (
        tuple(sorted(map(str, links))),
        tuple(sorted(map(str, stages))),
        enrollment.count(schema.consents),
        enrollment.count(enrollment.signup.outbox.table),
        len(enrollment.upstreams.solusvm_state.tokens),
    )


def link_path(link: str) -> str:
    return path_of(link)
