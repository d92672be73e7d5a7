"""The relay keeps every outbox moving when one of them is broken (a missing table, a bad row)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from shared.bus.messages import OutgoingMessage, PublishResult
from shared.db import Database
from shared.relay import OutboxRelay
from shared.service import ServiceTables
from tests.support.toy import ProbeHappened


class RecordingPublisher:
    """Confirms everything it is given, and remembers it."""

    def __init__(self) -> None:
        self.published: list[OutgoingMessage] = []

    def publish(self, messages: Sequence[OutgoingMessage]) -> PublishResult:
        self.published.extend(messages)
        return PublishResult(frozenset(m.event_id for m in messages), {})

    def close(self) -> None:
        pass


def test_a_broken_outbox_does_not_stall_the_ones_after_it(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'relay.sqlite'}")
    broken, healthy = ServiceTables("broken"), ServiceTables("healthy")
    healthy.metadata.create_all(db.engine)  # the broken service's tables were never created
    with db.transaction() as session:
        envelope = healthy.outbox.add_event(session, ProbeHappened(key="must-go-out"))
    publisher = RecordingPublisher()
    relay = OutboxRelay(db, [broken.outbox, healthy.outbox], lambda producer: publisher)

    assert relay.relay_once() == 1
    assert [m.event_id for m in publisher.published] == [envelope.event_id]
    with db.transaction() as session:
        assert healthy.outbox.backlog(session) == 0

    # The broken outbox waits out its back-off instead of failing on every pass.
    assert relay.relay_once() == 0
    assert "broken" in relay._outbox_failures
    db.dispose()
