"""A RabbitMQ cluster of the test's own: three private nodes on loopback, joined, for tests that lose
nodes of a cluster.

Each node is a ``PrivateBroker`` (its own node name, AMQP and distribution ports, data, logs and config
under its own directory); the three share one Erlang cookie, which is what lets them cluster and
nothing else's nodes join them. Nodes 2 and 3 join node 1 (``stop_app``, ``join_cluster``,
``start_app``), and the cluster is ready when all three run. Every ``rabbitmqctl`` call names one of
these nodes: the shared broker is never touched.

    with PrivateCluster(base) as cluster:
        bus = RabbitBus(cluster.url(), ...)          # "amqp://...:p1/;amqp://...:p2/;amqp://...:p3/"
        leader, _ = cluster.leading_node(queue_names)  # the node leading most of them
        leader.kill(); ...; cluster.restart(leader)  # SIGKILL, later back into the cluster
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.support.private_broker import START_TIMEOUT, PrivateBroker, _exit_on_sigterm, worker_label

SIZE = 3


class PrivateCluster:
    def __init__(self, base: Path, size: int = SIZE) -> None:
        self.base = Path(base)
        self.base.mkdir(parents=True, exist_ok=True)
        self.base.chmod(0o711)  # the nodes may run as another user (``rabbitmq`` under root): let them in
        prefix = f"pp-{worker_label()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        cookie = uuid.uuid4().hex + uuid.uuid4().hex
        self.nodes = [
            PrivateBroker(self.base / f"node{n}", name=f"{prefix}-{n}", cookie=cookie) for n in range(1, size + 1)
        ]

    # -- addresses -------------------------------------------------------------------------------
    def url(self, first: int = 0) -> str:
        """The failover list of every node's AMQP URL, starting with node ``first`` (0-based)."""
        urls = [node.url for node in self.nodes]
        return ";".join(urls[first:] + urls[:first])

    def node(self, nodename: str) -> PrivateBroker:
        (found,) = [node for node in self.nodes if node.nodename == nodename]
        return found

    def index(self, node: PrivateBroker) -> int:
        return self.nodes.index(node) + 1

    # -- forming and reforming -----------------------------------------------------------------
    def start(self, timeout: float = START_TIMEOUT) -> PrivateCluster:
        self._boot(self.nodes, timeout)
        seed = self.nodes[0]
        for node in self.nodes[1:]:
            if seed.nodename not in self.running_nodes(node):
                node.ctl("stop_app")
                node.ctl("join_cluster", seed.nodename)
                node.start_app(timeout)
        self.await_all_running(timeout)
        return self

    def _boot(self, nodes: Iterable[PrivateBroker], timeout: float) -> None:
        """Start nodes side by side (a node that was in the cluster rejoins it by itself)."""
        nodes = list(nodes)
        for node in nodes:
            node.launch()
        for node in nodes:
            node.await_startup(timeout)

    def running_nodes(self, asking: PrivateBroker | None = None) -> set[str]:
        """The cluster's running nodes, as one running node sees them."""
        asking = asking or self.any_running()
        status = json.loads(asking.ctl("cluster_status", "--formatter", "json"))
        return set(status.get("running_nodes", []))

    def any_running(self) -> PrivateBroker:
        for node in self.nodes:
            if node.running and node.accepts_connections():
                return node
        raise RuntimeError(f"no node of the private cluster is running:\n{self.diagnosis()}")

    def await_all_running(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        wanted = {node.nodename for node in self.nodes}
        while True:
            try:
                if self.running_nodes() == wanted:
                    return
            except RuntimeError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the private cluster did not have {len(wanted)} running nodes in {timeout}s:\n{self.diagnosis()}"
                )
            time.sleep(0.5)

    def restart(self, nodes: PrivateBroker | Sequence[PrivateBroker], timeout: float = START_TIMEOUT) -> None:
        """Start stopped or killed nodes again on their data; they rejoin the cluster."""
        self._boot([nodes] if isinstance(nodes, PrivateBroker) else nodes, timeout)
        self.await_all_running(timeout)

    def stop_nodes(self, nodes: Sequence[PrivateBroker], timeout: float = 60.0) -> None:
        """Stop nodes cleanly (SIGTERM, as an operator's shutdown), all at once."""
        for node in nodes:
            if node.running:
                assert node.process is not None
                os.killpg(node.process.pid, signal.SIGTERM)
        for node in nodes:
            node.shutdown(timeout)  # waits for the exit; SIGKILL if it does not come

    def ensure_up(self) -> None:
        """Every node running, its app started, all in one cluster (after a test that broke it)."""
        self._boot([node for node in self.nodes if not node.running], START_TIMEOUT)
        for node in self.nodes:
            if not node.accepts_connections():
                node.start_app()
        self.await_all_running()

    # -- queues ----------------------------------------------------------------------------------
    def quorum_queues(self, vhost: str = "/") -> dict[str, dict[str, Any]]:
        """Every quorum queue of ``vhost``: its leader and its members (replicas)."""
        output = self.any_running().ctl(
            "list_queues", "-p", vhost, "name", "type", "leader", "members", "--formatter", "json"
        )
        return {row["name"]: row for row in json.loads(output) if row.get("type") == "quorum"}

    def leading_node(self, queue_names: Iterable[str]) -> tuple[PrivateBroker, int]:
        """The node that leads most of ``queue_names``, and how many of them it leads."""
        queues = self.quorum_queues()
        leaders = Counter(queues[name]["leader"] for name in queue_names)
        ((nodename, led),) = leaders.most_common(1)
        return self.node(nodename), led

    # -- teardown --------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop every node, whatever its state, and remove the cluster's files."""
        try:
            for node in self.nodes:
                try:
                    node.shutdown()
                except Exception:
                    node.kill()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def diagnosis(self) -> str:
        return "\n".join(f"=== {node.nodename}\n{node.diagnosis()}" for node in self.nodes)

    def __enter__(self) -> PrivateCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(scope="module")
def private_cluster() -> Iterator[PrivateCluster]:
    """One private 3-node cluster per test module that asks for it, always stopped (a SIGTERM to
    pytest included, as for the private node). Not per session: three idle quorum-queue nodes kept
    a fifth of this machine's two cores busy for the rest of the suite."""
    cluster = PrivateCluster(Path(tempfile.mkdtemp(prefix=f"postpay-rabbitmq-cluster-{worker_label()}-")))
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        if previous is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.fixture
def private_cluster_up(private_cluster: PrivateCluster) -> Iterator[PrivateCluster]:
    """The session's private cluster, whole again after the test whatever the test did to it."""
    private_cluster.ensure_up()
    yield private_cluster
    private_cluster.ensure_up()
