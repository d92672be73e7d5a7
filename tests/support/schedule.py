"""How ``pytest -n N`` deals the suite out to its workers: two heavy lanes, the light tests fill the rest.

The heavy tests (chaos closes on private brokers and clusters, Chromium, the benchmarks' smoke runs, the
demo) each load the two cores for minutes. Several at once slow each other past their timeouts, and all
workers on heavy ones leave the ~1,900 light tests waiting. So:

- a heavy test runs only on a worker holding one of the two *lanes* (one, with two workers; and with
  one worker it is that one's), and a worker runs one test at a time: at most one heavy test per lane;
- a lane, once taken, stays with its worker, which takes the heavy tests one module at a time (a
  module's heavy tests together, so its module-scoped fixtures, a private cluster say, start once),
  the next module when it holds none, light tests meanwhile to keep its queue, until none are left;
- the other workers take only light tests, a few at a time, in the order collected;
- ``order`` (run by each worker's ``pytest_collection_modifyitems``) puts the modules expected to take
  longest first, so no long test is dealt out last.

xdist's own ``--dist loadgroup`` only keeps a group on one worker (and its groups were seen to fall
apart under pytest 9): it cannot say "at most two of these at once". This class follows
the protocol of xdist's ``LoadScheduling`` (``xdist/scheduler/protocol.py``). One rule of that protocol
shapes it: a worker starts a test only once it holds the next one (or its shutdown), so each worker is
kept ``QUEUED`` tests ahead.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from fnmatch import fnmatch
from typing import Any, Protocol, TypeVar

# Heavy tests, by node id: what the controller, which collects nothing, can tell of a test.
HEAVY = (
    "tests/chaos/*",
    "tests/e2e/*",
    "tests/integration/test_bench_*_smoke.py::*",
    "tests/integration/test_demo.py::test_the_demo_*",
)
LANES = 2
QUEUED = 3  # the test running, the next, and one spare, so a worker never waits for the controller


def is_heavy(nodeid: str) -> bool:
    return any(fnmatch(nodeid, pattern) for pattern in HEAVY)


def module_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


class Item(Protocol):
    nodeid: str

    def get_closest_marker(self, name: str) -> Any: ...


T = TypeVar("T", bound=Item)


def order(items: Sequence[T]) -> list[T]:
    """The longest first, a module's tests kept together and in their order: heavy modules with slow
    tests (the chaos closes), other heavy ones, then light modules with slow or browser tests, then
    the rest, each group in collection order."""

    def rank(item: Item) -> int:
        slow = item.get_closest_marker("slow") is not None or item.get_closest_marker("browser") is not None
        return (0 if slow else 1) if is_heavy(item.nodeid) else (2 if slow else 3)

    module_rank: dict[str, int] = {}
    for item in items:
        module = module_of(item.nodeid)
        module_rank[module] = min(module_rank.get(module, 3), rank(item))
    return sorted(items, key=lambda item: module_rank[module_of(item.nodeid)])  # stable


class Node(Protocol):
    """What the scheduler uses of xdist's ``WorkerController``."""

    @property
    def shutting_down(self) -> bool: ...

    def send_runtest_some(self, indices: Sequence[int]) -> None: ...

    def shutdown(self) -> None: ...


class LaneScheduling:
    def __init__(
        self,
        numnodes: int,
        log: Callable[..., object] | None = None,
        *,
        lanes: int = LANES,
        report: Callable[[str], None] | None = None,
    ) -> None:
        """``report``: where to say that the workers collected different tests (xdist's terminal)."""
        self.numnodes = numnodes
        self.report = report or (lambda message: None)
        # Never every worker on heavy tests, unless there is only one.
        self.lane_count = max(1, min(lanes, numnodes - 1))
        self.log = log or (lambda *args: None)
        self.node2collection: dict[Node, list[str]] = {}
        self.node2pending: dict[Node, list[int]] = {}
        self.lanes: list[Node] = []
        self.collection: list[str] | None = None
        self.heavy: deque[list[int]] = deque()  # one module's heavy tests per entry
        self.light: deque[int] = deque()

    # -- the protocol's state ------------------------------------------------------------------------
    @property
    def nodes(self) -> list[Node]:
        return list(self.node2pending)

    @property
    def collection_is_completed(self) -> bool:
        return len(self.node2collection) >= self.numnodes

    @property
    def tests_finished(self) -> bool:
        """All dealt out, and each worker down to its last test (which its shutdown lets it run)."""
        if not self.collection_is_completed or self.heavy or self.light:
            return False
        return all(len(pending) < 2 for pending in self.node2pending.values())

    @property
    def has_pending(self) -> bool:
        return bool(self.heavy or self.light or any(self.node2pending.values()))

    # -- the protocol's events -----------------------------------------------------------------------
    def add_node(self, node: Node) -> None:
        assert node not in self.node2pending
        self.node2pending[node] = []

    def add_node_collection(self, node: Node, collection: Sequence[str]) -> None:
        assert node in self.node2pending
        if self.collection is not None and list(collection) != self.collection:
            self.log(f"{node} collected other tests than the first workers: it gets none")
            return
        self.node2collection[node] = list(collection)

    def schedule(self) -> None:
        """Deal out the first tests (the first call), or give a worker that joined later its share."""
        assert self.collection_is_completed
        if self.collection is None:
            first, *others = self.node2collection.values()
            if any(other != first for other in others):
                # As xdist's schedulers do: run none, say why (running some would hide the difference).
                self.report("\n".join(_differences(self.node2collection)))
                self.log("**Different tests collected, aborting run**")
                return
            self.collection = first
            self._split(range(len(first)))
        for node in self.nodes:
            self._fill(node)

    def mark_test_complete(self, node: Node, item_index: int, duration: float = 0) -> None:
        self.node2pending[node].remove(item_index)
        self._fill(node)

    def remove_node(self, node: Node) -> str | None:
        """A worker left: at the end with nothing pending, or crashed, when the test it was running is
        returned (xdist reports it) and the rest it held go back to be dealt out again."""
        pending = self.node2pending.pop(node)
        if node in self.lanes:
            self.lanes.remove(node)
        if not pending:
            return None
        assert self.collection is not None
        crashed, *rest = pending
        self._split(rest, front=True)
        for other in self.nodes:
            self._fill(other)
        return self.collection[crashed]

    def mark_test_pending(self, item: str) -> None:
        raise NotImplementedError("only work-stealing schedulers take tests back")

    def remove_pending_tests_from_node(self, node: Node, indices: Sequence[int]) -> None:
        raise NotImplementedError("only work-stealing schedulers take tests back")

    # -- dealing -------------------------------------------------------------------------------------
    def _split(self, indices: Iterable[int], *, front: bool = False) -> None:
        assert self.collection is not None
        groups: dict[str, list[int]] = {}
        light: list[int] = []
        for index in indices:
            nodeid = self.collection[index]
            if is_heavy(nodeid):
                groups.setdefault(module_of(nodeid), []).append(index)
            else:
                light.append(index)
        if front:
            self.heavy.extendleft(reversed(groups.values()))
            self.light.extendleft(reversed(light))
        else:
            self.heavy.extend(groups.values())
            self.light.extend(light)

    def _fill(self, node: Node) -> None:
        if node.shutting_down:
            return
        pending = self.node2pending[node]
        while len(pending) < QUEUED:
            batch = self._next_for(node)
            if not batch:
                break
            pending.extend(batch)
            node.send_runtest_some(batch)
        if not self.light and not (self.heavy and self._may_run_heavy(node)):
            node.shutdown()  # nothing more will come its way: it runs what it holds and ends

    def _may_run_heavy(self, node: Node) -> bool:
        return node in self.lanes or len(self.lanes) < self.lane_count

    def _next_for(self, node: Node) -> list[int]:
        """A heavy module for a lane's worker that holds no heavy test; otherwise a light test. Holding a
        second heavy module would settle now which lane runs it, and the other may be free first: only
        a worker that would stall without (no light test left to follow its heavy one) takes it."""
        assert self.collection is not None
        pending = self.node2pending[node]
        holds_heavy = any(is_heavy(self.collection[index]) for index in pending)
        if self.heavy and self._may_run_heavy(node) and (not holds_heavy or (not self.light and len(pending) < 2)):
            if node not in self.lanes:
                self.lanes.append(node)
            return self.heavy.popleft()
        if self.light:
            return [self.light.popleft()]
        return []


def _differences(collections: dict[Node, list[str]]) -> Iterable[str]:
    from xdist.report import report_collection_diff

    (first_node, first), *others = collections.items()
    for node, collection in others:
        message = report_collection_diff(first, collection, str(first_node), str(node))
        if message:
            yield message
