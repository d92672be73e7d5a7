"""How the meter pages ``GET /servers``: the first page alone, the rest side by side, then on while
pages keep coming; a panel that never stops paging fails the sweep instead of looping."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from services.meter.reading import Read, Reader
from services.meter.settings import MeterSettings
from shared.dependencies import Dependencies
from shared.upstream.solusvm_connection import SolusVMResponseError


class Panel:
    """``server_page`` over ``total`` servers, ``per_page`` each, with or without ``meta.last_page``;
    ``grow`` servers appear once page 2 has been read (created during the sweep)."""

    def __init__(self, total: int, *, meta: bool = True, grow: int = 0) -> None:
        self.total, self.meta, self.grow = total, meta, grow
        self.asked: list[int] = []
        self.lock = threading.Lock()

    def server_page(self, page: int, *, per_page: int) -> tuple[list[Any], int | None]:
        with self.lock:
            self.asked.append(page)
            if page == 2:
                self.total, self.grow = self.total + self.grow, 0
            ids = range((page - 1) * per_page + 1, min(page * per_page, self.total) + 1)
            last = max(1, -(-self.total // per_page))
        return [{"id": n} for n in ids], last if self.meta else None


def pages(panel: Panel, **settings: Any) -> list[int]:
    options = {"meter_page_size": 10, "meter_page_concurrency": 3, **settings}
    deps = Dependencies(whmcs=None, solusvm=panel, mailer=None, clock=lambda: datetime(2026, 10, 1, tzinfo=UTC))
    reader = Reader(deps, MeterSettings(**options))
    read = Read()
    seen = [item["id"] for items, _, _ in reader.server_pages(read) for item in items]
    assert read.requests == len(panel.asked)
    return seen


def test_every_page_is_read_once_in_order() -> None:
    panel = Panel(95)
    assert pages(panel) == list(range(1, 96))
    assert sorted(panel.asked) == list(range(1, 11)) and panel.asked[0] == 1


def test_servers_created_during_the_sweep_are_read_past_the_first_pages_last() -> None:
    panel = Panel(100, grow=25)  # 10 full pages when the sweep began, 13 once page 2 was read
    assert pages(panel) == list(range(1, 126))


def test_without_meta_the_pages_are_read_one_by_one_until_a_short_one() -> None:
    panel = Panel(40, meta=False)
    assert pages(panel) == list(range(1, 41))
    assert panel.asked == [1, 2, 3, 4, 5], "a full last page needs one more ask to know it was the last"


def test_a_panel_that_pages_past_the_limit_fails_the_sweep() -> None:
    with pytest.raises(SolusVMResponseError, match="more than 5 pages"):
        pages(Panel(95), meter_max_pages=5)
    with pytest.raises(SolusVMResponseError, match="more than 3 pages"):
        pages(Panel(10_000, meta=False), meter_max_pages=3)
