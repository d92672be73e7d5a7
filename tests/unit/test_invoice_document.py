"""What an invoice says (lines, dates, run key) and how an issued one is compared with a new draft."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.invoicer.invoice_diff import Line, diff_lines, has_differences
from services.invoicer.invoice_document import (
    describe_vm,
    draft_invoice,
    notes_marker,
    run_key,
    server_reference,
)
from services.invoicer.pricing import Tariff, price_usage
from shared.events.billing import VmUsage
from shared.periods import BillingPeriod
from tests.support.usage import vm_usage

OCTOBER = BillingPeriod.parse("2026-10", "Europe/Berlin")


def vm(server_id: int, hours: int, name: str = "vps") -> VmUsage:
    return vm_usage(server_id, hours, name=name, plan_id=3)


@given(st.integers(min_value=1, max_value=10**9), st.integers(min_value=1, max_value=10**9))
def test_no_run_key_marker_is_found_inside_another_clients(client: int, other: int) -> None:
    mine, theirs = notes_marker(run_key(client, "2026-10")), notes_marker(run_key(other, "2026-10"))
    assert (mine in f"notes {theirs} more") == (client == other)
    assert notes_marker(run_key(client, "2026-10")) not in notes_marker(run_key(client, "2026-11"))


def test_a_draft_has_one_line_per_vm_with_name_plan_hours_tokens_and_period() -> None:
    priced = price_usage([vm(100, 744, "web"), vm(102, 1, "tmp")], Tariff("EUR", Decimal("0.0009")))
    draft = draft_invoice(7, OCTOBER, priced, now=datetime(2026, 10, 31, 23, 30, tzinfo=UTC), due_days=14, taxed=True)
    assert [line.description for line in draft.lines] == [
        "web (#100, plan S): 744 hours, 5000 tokens, 2026-10-01 to 2026-10-31",
        "tmp (#102, plan S): 1 hour, 7 tokens, 2026-10-01 to 2026-10-31",
    ]
    assert [line.amount for line in draft.lines] == [Decimal("4.50"), Decimal("0.01")]
    assert all(line.taxed for line in draft.lines)
    assert draft.total == Decimal("4.51")
    # 23:30 UTC on 31 October is already 1 November in Berlin: the invoice is dated locally.
    assert (draft.invoice_date, draft.due_date) == (date(2026, 11, 1), date(2026, 11, 15))
    assert notes_marker("postpay:7:2026-10") in draft.notes and "Europe/Berlin" in draft.notes
    assert [server_reference(line.description) for line in draft.lines] == [100, 102]


def test_a_zero_invoice_without_vms_says_there_was_no_usage() -> None:
    draft = draft_invoice(
        7,
        OCTOBER,
        price_usage([], Tariff("USD", Decimal("0.001"))),
        now=datetime(2026, 11, 1, tzinfo=UTC),
        due_days=0,
        taxed=False,
    )
    assert [(line.description, line.amount) for line in draft.lines] == [
        ("SolusVM 2 usage: none, 2026-10-01 to 2026-10-31", Decimal("0.00"))
    ]


def test_the_diff_pairs_lines_by_server_and_reports_each_kind_of_change() -> None:
    issued = [
        Line("web (#100, plan S): 744 hours, 5000 tokens, 2026-10-01 to 2026-10-31", Decimal("4.50")),
        Line("db (#101, plan S): 10 hours, 70 tokens, 2026-10-01 to 2026-10-31", Decimal("0.06")),
        Line("old (#103, plan S): 2 hours, 14 tokens, 2026-10-01 to 2026-10-31", Decimal("0.01")),
        Line("Setup fee", Decimal("5.00")),
    ]
    proposed = [
        Line("web (#100, plan S): 744 hours, 5000 tokens, 2026-10-01 to 2026-10-31", Decimal("4.50")),
        Line("db (#101, plan S): 12 hours, 84 tokens, 2026-10-01 to 2026-10-31", Decimal("0.08")),
        Line("new (#104, plan S): 1 hour, 7 tokens, 2026-10-01 to 2026-10-31", Decimal("0.01")),
    ]
    changes = diff_lines(issued, proposed)
    assert [(c.kind, c.description.split(" ")[0]) for c in changes] == [
        ("same", "web"),
        ("changed", "db"),
        ("added", "new"),
        ("removed", "old"),
        ("removed", "Setup"),
    ]
    assert changes[1].issued.amount == Decimal("0.06") and changes[1].proposed.amount == Decimal("0.08")
    assert has_differences(changes)
    assert not has_differences(diff_lines(proposed, proposed))


NOVEMBER = BillingPeriod.parse("2026-11", "Europe/Berlin")


def ran(server_id: int, hours: int, ran_from: datetime, ran_until: datetime) -> VmUsage:
    return vm(server_id, hours).model_copy(update={"ran_from": ran_from, "ran_until": ran_until})


def test_a_line_says_the_days_the_vm_ran_within_the_period_not_the_whole_month() -> None:
    forty_minutes = ran(5, 1, datetime(2026, 11, 3, 9, 0, tzinfo=UTC), datetime(2026, 11, 3, 9, 40, tzinfo=UTC))
    three_days = ran(6, 50, datetime(2026, 11, 3, 22, 30, tzinfo=UTC), datetime(2026, 11, 6, 0, 30, tzinfo=UTC))
    # Up to the period's end (midnight in Berlin): the last day it ran is the 30th, not 1 December.
    to_the_end = ran(7, 700, datetime(2026, 11, 1, 8, tzinfo=UTC), NOVEMBER.ends_at)
    lines = [describe_vm(usage, NOVEMBER) for usage in (forty_minutes, three_days, to_the_end)]
    assert lines == [
        "vps (#5, plan S): 1 hour, 7 tokens, ran 2026-11-03",
        # 22:30 UTC on the 3rd is 23:30 in Berlin; 00:30 UTC on the 6th is 01:30 there.
        "vps (#6, plan S): 50 hours, 350 tokens, ran 2026-11-03 to 2026-11-06",
        "vps (#7, plan S): 700 hours, 4900 tokens, ran 2026-11-01 to 2026-11-30",
    ]
    assert [server_reference(line) for line in lines] == [5, 6, 7]


def test_a_usage_without_run_dates_still_names_the_whole_period() -> None:
    assert describe_vm(vm(5, 2), NOVEMBER).endswith(", 2026-11-01 to 2026-11-30")


def test_run_dates_stay_off_the_wire_when_unset_and_come_in_pairs() -> None:
    assert "ran_from" not in vm(5, 2).model_dump(mode="json")
    both = ran(5, 1, datetime(2026, 11, 3, tzinfo=UTC), datetime(2026, 11, 3, 1, tzinfo=UTC))
    assert VmUsage.model_validate(both.model_dump(mode="json")) == both
    with pytest.raises(ValueError, match="together"):
        vm(5, 1).model_copy(update={"ran_from": NOVEMBER.starts_at}).model_validate(
            {**vm(5, 1).model_dump(mode="json"), "ran_from": "2026-11-03T00:00:00Z"}
        )
    with pytest.raises(ValueError, match="before"):
        VmUsage.model_validate(
            {
                **vm(5, 1).model_dump(mode="json"),
                "ran_from": "2026-11-03T02:00:00Z",
                "ran_until": "2026-11-03T01:00:00Z",
            }
        )
