"""The xdist scheduler (tests/support/schedule.py) on fake workers: each runs its first test once it holds
the next one or its shutdown, as xdist's workers do, heavy tests taking 10 time units and light ones 1."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support.schedule import QUEUED, LaneScheduling, is_heavy, module_of, order

CHAOS = [f"tests/chaos/test_month_close_cluster.py::test_{n}" for n in range(2)] + [
    "tests/chaos/test_month_close_chaos.py::test_close"
]
E2E = [f"tests/e2e/test_enrollment_browser.py::test_{n}" for n in range(3)]
SMOKE = ["tests/integration/test_bench_idle_smoke.py::test_idle"]
DEMO = [
    "tests/integration/test_demo.py::test_the_demo_runs_the_same_over_rabbitmq",
    "tests/integration/test_demo.py::test_the_story_holds_in_every_month_length[2026-02]",
]
LIGHT = [f"tests/unit/test_money_{n // 10}.py::test_{n}" for n in range(40)]
COLLECTION = [*CHAOS, *E2E, *SMOKE, *DEMO, *LIGHT]


@dataclass(eq=False)
class FakeNode:
    name: str
    queue: list[int] = field(default_factory=list)
    shutting_down: bool = False

    def send_runtest_some(self, indices: Sequence[int]) -> None:
        assert not self.shutting_down, f"{self.name} was sent tests after its shutdown"
        self.queue.extend(indices)

    def shutdown(self) -> None:
        self.shutting_down = True

    def __repr__(self) -> str:
        return self.name


@dataclass
class Run:
    node: FakeNode
    nodeid: str
    start: float
    end: float


@dataclass
class Session:
    collection: list[str]
    sched: LaneScheduling
    nodes: list[FakeNode]
    runs: list[Run] = field(default_factory=list)
    running: dict[FakeNode, Run] = field(default_factory=dict)
    now: float = 0.0

    def join(self, node: FakeNode) -> None:
        self.nodes.append(node)
        self.sched.add_node(node)
        self.sched.add_node_collection(node, self.collection)
        if self.sched.collection_is_completed:
            self.sched.schedule()

    def drain(self, *, until_runs: int | None = None) -> None:
        """Run the workers until all are done (or ``until_runs`` tests have started)."""
        running = self.running
        while True:
            for node in self.nodes:
                ready = node.queue and (len(node.queue) >= 2 or node.shutting_down)
                if node not in running and ready:
                    nodeid = self.collection[node.queue[0]]
                    running[node] = Run(node, nodeid, self.now, self.now + (10 if is_heavy(nodeid) else 1))
                    self.runs.append(running[node])
                    if until_runs is not None and len(self.runs) >= until_runs:
                        return
            if not running:
                return
            node = min(running, key=lambda n: running[n].end)
            self.now = running.pop(node).end
            self.sched.mark_test_complete(node, node.queue.pop(0))
            if self.sched.tests_finished:  # xdist's DSession then shuts every worker down
                for each in self.nodes:
                    each.shutdown()

    def heavy_nodes(self) -> set[str]:
        return {run.node.name for run in self.runs if is_heavy(run.nodeid)}

    def most_heavy_at_once(self) -> int:
        heavy = [run for run in self.runs if is_heavy(run.nodeid)]
        return max((sum(1 for o in heavy if o.start <= run.start < o.end) for run in heavy), default=0)


def session(workers: int, collection: list[str] = COLLECTION) -> Session:
    started = Session(collection, LaneScheduling(workers), [])
    for n in range(workers):
        started.join(FakeNode(f"gw{n}"))
    return started


def test_the_heavy_tests_run_on_two_lanes_and_the_third_worker_only_runs_light_ones() -> None:
    run = session(3)
    run.drain()

    assert sorted(r.nodeid for r in run.runs) == sorted(COLLECTION)  # each once
    assert len(run.heavy_nodes()) == 2 and run.most_heavy_at_once() == 2
    (light_only,) = {node.name for node in run.nodes} - run.heavy_nodes()
    assert {r.node.name for r in run.runs if r.nodeid in LIGHT} >= {light_only}
    assert run.sched.tests_finished and not run.sched.has_pending
    assert all(node.shutting_down and not node.queue for node in run.nodes)


def test_a_modules_heavy_tests_run_on_one_worker_so_its_module_fixtures_start_once() -> None:
    run = session(3)
    run.drain()

    for module in {module_of(nodeid) for nodeid in COLLECTION if is_heavy(nodeid)}:
        assert len({r.node.name for r in run.runs if module_of(r.nodeid) == module and is_heavy(r.nodeid)}) == 1


def test_the_heavy_tests_start_first_and_the_light_ones_fill_the_other_worker_meanwhile() -> None:
    run = session(3)
    run.drain()

    first_heavy = sorted((r for r in run.runs if is_heavy(r.nodeid)), key=lambda r: r.start)[:2]
    assert [r.start for r in first_heavy] == [0, 0]
    # 8 heavy tests of 10 on two lanes take 40; the 42 light ones of 1 end about then, not after.
    assert max(r.end for r in run.runs) <= 45


def test_the_demos_quick_tests_are_light() -> None:
    assert is_heavy(DEMO[0]) and not is_heavy(DEMO[1])
    assert is_heavy("tests/integration/test_bench_meter_smoke.py::test_the_accuracy_benchmark")
    assert not is_heavy("tests/integration/test_benchmarks.py::test_x")


@pytest.mark.parametrize(("workers", "lanes"), [(1, 1), (2, 1), (4, 2)])
def test_never_every_worker_on_heavy_tests_unless_there_is_only_one(workers: int, lanes: int) -> None:
    run = session(workers)
    run.drain()

    assert sorted(r.nodeid for r in run.runs) == sorted(COLLECTION)
    assert len(run.heavy_nodes()) == lanes


def test_each_worker_is_kept_a_few_tests_ahead_and_never_waits_for_the_next() -> None:
    run = session(3, LIGHT)

    assert [len(node.queue) for node in run.nodes] == [QUEUED] * 3


def test_a_crashed_workers_tests_are_dealt_out_again_and_its_lane_freed_for_its_replacement() -> None:
    run = session(3)
    run.drain(until_runs=3)
    lane = next(node for node in run.nodes if is_heavy(run.collection[node.queue[0]]))
    crashed_id = run.collection[lane.queue[0]]
    held = [run.collection[index] for index in lane.queue[1:]]

    assert run.sched.remove_node(lane) == crashed_id
    run.nodes.remove(lane)
    del run.running[lane]
    run.join(FakeNode("gw3"))
    run.runs = [r for r in run.runs if r.node is not lane]
    run.drain()

    ran = [r.nodeid for r in run.runs]
    assert crashed_id not in ran  # xdist reports it as crashed; it is not run again
    assert sorted(ran) == sorted(set(COLLECTION) - {crashed_id}) and set(held) <= set(ran)
    assert "gw3" in run.heavy_nodes() and len(run.heavy_nodes()) == 2


def test_workers_that_collected_different_tests_are_given_none_and_the_difference_is_reported() -> None:
    reported: list[str] = []
    sched = LaneScheduling(2, report=reported.append)
    nodes = [FakeNode("gw0"), FakeNode("gw1")]
    for node, collection in zip(nodes, [COLLECTION, COLLECTION[:-1]]):
        sched.add_node(node)
        sched.add_node_collection(node, collection)
    sched.schedule()

    assert all(not node.queue for node in nodes)
    assert len(reported) == 1 and LIGHT[-1] in reported[0]


@dataclass
class FakeItem:
    nodeid: str
    markers: tuple[str, ...] = ()

    def get_closest_marker(self, name: str) -> Any:
        return name if name in self.markers else None


def test_the_longest_modules_come_first_and_each_module_stays_together_in_its_order() -> None:
    items = [
        FakeItem("tests/contract/test_a.py::test_1"),
        FakeItem("tests/integration/test_meter_month.py::test_quick"),
        FakeItem("tests/integration/test_meter_month.py::test_month", ("slow",)),
        FakeItem("tests/integration/test_demo.py::test_the_demo_runs"),
        FakeItem("tests/chaos/test_month_close_chaos.py::test_close", ("slow",)),
        FakeItem("tests/unit/test_typecheck.py::test_mypy", ("slow",)),
        FakeItem("tests/contract/test_a.py::test_2"),
    ]

    assert [item.nodeid for item in order(items)] == [
        "tests/chaos/test_month_close_chaos.py::test_close",
        "tests/integration/test_demo.py::test_the_demo_runs",
        "tests/integration/test_meter_month.py::test_quick",
        "tests/integration/test_meter_month.py::test_month",
        "tests/unit/test_typecheck.py::test_mypy",
        "tests/contract/test_a.py::test_1",
        "tests/contract/test_a.py::test_2",
    ]
