"""The relay's confirm tracking: whatever order and grouping the broker confirms a batch in (single or
``multiple`` acks and nacks), each message ends acked or nacked exactly as the broker said."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.bus.rabbit_publish import ConfirmTracker


@given(st.integers(1, 40), st.data())
@settings(max_examples=300, deadline=None)
def test_every_confirm_settles_exactly_the_tags_it_names(sent: int, data: st.DataObject) -> None:
    tracker = ConfirmTracker()
    tracker.next_tag = data.draw(st.integers(1, 1000))  # a channel that already confirmed earlier batches
    first = tracker.next_tag
    ids = [uuid.uuid4() for _ in range(sent)]
    for event_id in ids:
        tracker.sent(event_id)
    expected: dict[uuid.UUID, str] = {}
    while tracker.pending:
        tag = data.draw(st.sampled_from(sorted(tracker.pending)))
        multiple, ack = data.draw(st.booleans()), data.draw(st.booleans())
        covered = [t for t in range(first, first + sent) if (t <= tag if multiple else t == tag)]
        for t in covered:
            expected.setdefault(ids[t - first], "acked" if ack else "nacked")
        (tracker.on_ack if ack else tracker.on_nack)(tag, multiple)
    assert {i: "acked" for i in tracker.acked} | {i: "nacked" for i in tracker.nacked} == expected
    assert len(tracker.acked) + len(tracker.nacked) == sent
