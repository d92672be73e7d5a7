"""Acknowledging a settle round's deliveries in as few frames as the broker's ``multiple`` ack allows,
without ever acknowledging a delivery whose handler has not finished."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.bus.amqp_wire import coalesced_acks


def apply_acks(unacked: set[int], acks: list[tuple[int, bool]]) -> set[int]:
    """What the broker does with the acks; an ack of a tag not outstanding is a channel error."""
    unacked = set(unacked)
    for tag, multiple in acks:
        assert tag in unacked, f"delivery {tag} acknowledged twice or never delivered (PRECONDITION_FAILED)"
        unacked -= {t for t in unacked if t <= tag} if multiple else {tag}
    return unacked


@given(st.sets(st.integers(1, 200), min_size=1, max_size=80), st.data())
def test_exactly_the_finished_deliveries_are_acknowledged(delivered: set[int], data: st.DataObject) -> None:
    finished = data.draw(st.sets(st.sampled_from(sorted(delivered))))
    still_unsettled = delivered - finished
    acks = coalesced_acks(finished, still_unsettled)
    assert apply_acks(delivered, acks) == still_unsettled
    assert len(acks) <= len(finished)


def test_a_run_below_every_unfinished_delivery_is_one_frame() -> None:
    assert coalesced_acks([3, 1, 2, 4], still_unsettled={5, 9}) == [(4, True)]
    assert coalesced_acks([1, 2, 7, 8], still_unsettled={5}) == [(2, True), (7, False), (8, False)]
    assert coalesced_acks([6], still_unsettled={5}) == [(6, False)]
    assert coalesced_acks([4], still_unsettled=set()) == [(4, False)]
    assert coalesced_acks([], still_unsettled={1}) == []
