"""The moving parts of a month close on a private RabbitMQ cluster: postpay's processes spread over the
nodes, a clock of invoices to measure how long the close paused around a failure, and what the
processes' metrics and logs say about it (messages handled twice, reconnects, failed publishes).
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.support.billing import BillingHarness
from tests.support.private_broker import free_port
from tests.support.private_cluster import PrivateCluster
from tests.support.service_processes import ServiceProcess, wait_for_log

# Two processes of each consuming part and of the relay, as deploy/ runs them: six processes, two per node.
PARTS = ("usage-collector", "usage-collector", "invoicer", "invoicer", "relay", "relay")
CONSUMER_READY = '"consuming"'
RELAY_READY = "postpay running"
CONNECTION_LOST = "broker connection lost"
PUBLISH_FAILED = "outbox publish failed"


class ClusterProcess(ServiceProcess):
    """A service process with its own failover list (its own first node) and its own health port."""

    def __init__(
        self, part: str, env: dict[str, str], log_dir: Path, *, label: str, first_node: int, cluster: PrivateCluster
    ) -> None:
        self.health_port = free_port()
        self.first_node = first_node
        super().__init__(
            part,
            {**env, "POSTPAY_AMQP_URL": cluster.url(first_node), "POSTPAY_HEALTH_PORT": str(self.health_port)},
            log_dir,
            label=label,
        )

    @property
    def consumes(self) -> bool:
        return self.part != "relay"

    @property
    def ready_text(self) -> str:
        return CONSUMER_READY if self.consumes else RELAY_READY

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}{path}", timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError as exc:
            return 0, str(exc)

    def is_ready(self) -> bool:
        """What a Kubernetes readiness probe sees: /readyz answers 200 (database, broker, consumer)."""
        return self.get("/readyz")[0] == 200

    def counters(self) -> dict[str, float]:
        """Messages this process handled as duplicates, sent to retry, and parked, from its /metrics."""
        status, text = self.get("/metrics")
        assert status == 200, f"{self.label}: /metrics answered {status}: {text[:300]}"
        totals = {"duplicate": 0.0, "retried": 0.0, "parked": 0.0}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "postpay_messages_handled_total" and sample.labels.get("outcome") == "duplicate":
                    totals["duplicate"] += sample.value
                elif sample.name == "postpay_messages_retried_total":
                    totals["retried"] += sample.value
                elif sample.name == "postpay_messages_parked_total":
                    totals["parked"] += sample.value
        return totals

    def log_count(self, text: str) -> int:
        return self.log.read_text(errors="replace").count(text) if self.log.exists() else 0


def spread_processes(cluster: PrivateCluster, env: dict[str, str], log_dir: Path) -> list[ClusterProcess]:
    labels: dict[str, int] = {}
    processes = []
    for index, part in enumerate(PARTS):
        labels[part] = labels.get(part, 0) + 1
        processes.append(
            ClusterProcess(
                part,
                env,
                log_dir,
                label=f"{part}-{labels[part]}",
                first_node=index % len(cluster.nodes),
                cluster=cluster,
            )
        )
    return processes


def start_all(processes: Sequence[ClusterProcess]) -> None:
    for process in processes:
        process.start()
    for process in processes:
        wait_for_log(process, process.ready_text, timeout=120)


def wait_for(condition: Callable[[], Any], what: str, timeout: float, processes: Sequence[ClusterProcess]) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        for process in processes:
            assert process.crashed() is None, process.crashed()
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what}\n"
                + "\n".join(f"--- {p.label}\n{p.log_tail(1500)}" for p in processes)
            )
        time.sleep(0.1)


class InvoiceClock:
    """When the WHMCS simulator's invoice count grew, sampled every 50 ms on a thread of its own (a
    blocking node restart in the test must not blind it)."""

    def __init__(self, harness: BillingHarness) -> None:
        self.state = harness.upstreams.whmcs.state
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="invoice-clock", daemon=True)

    def start(self) -> InvoiceClock:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    @property
    def count(self) -> int:
        with self.state.lock:
            return len(self.state.invoices)

    def _run(self) -> None:
        last = -1
        while not self._stop.is_set():
            count = self.count
            if count != last:
                self.samples.append((time.monotonic(), count))
                last = count
            self._stop.wait(0.05)

    def longest_pause(self, start: float, end: float) -> tuple[float, float]:
        """The longest time without a new invoice between ``start`` and ``end`` (the stretch from the last
        invoice before ``start`` counts): (its length, when it began relative to ``start``)."""
        times = [at for at, _ in self.samples if start <= at <= end]
        before = [at for at, _ in self.samples if at < start]
        times = before[-1:] + times
        if len(times) < 2:
            return 0.0, 0.0
        length, began = max((later - earlier, earlier) for earlier, later in zip(times, times[1:]))
        return length, began - start

    def quiet_for(self, seconds: float) -> bool:
        return bool(self.samples) and time.monotonic() - self.samples[-1][0] >= seconds


@dataclass
class Failure:
    """One thing done to the cluster, when, and what the processes saw around it."""

    what: str
    at: float
    progress: int
    counters_before: dict[str, float]
    counters_after: dict[str, float] = field(default_factory=dict)
    logs_before: dict[str, int] = field(default_factory=dict)
    logs_after: dict[str, int] = field(default_factory=dict)
    down_seconds: float | None = None

    def line(self, clock: InvoiceClock, customers: int, until: float) -> str:
        pause, began = clock.longest_pause(self.at, until)
        redelivered = {k: round(self.counters_after.get(k, 0) - v) for k, v in self.counters_before.items()}
        logs = {k: self.logs_after.get(k, 0) - v for k, v in self.logs_before.items()}
        down = (
            f", the first of them taking clients again {self.down_seconds:.1f}s later"
            if self.down_seconds is not None
            else ""
        )
        return (
            f"{self.what} at {self.progress}/{customers} invoices{down}: the close paused "
            f"{pause:.1f}s (no new invoice from {began:+.1f}s to {began + pause:+.1f}s around it); "
            f"handled again as inbox duplicates {redelivered['duplicate']}, retried {redelivered['retried']}, "
            f"parked {redelivered['parked']}; consumer reconnects logged {logs[CONNECTION_LOST]}, "
            f"failed publishes logged (then re-sent) {logs[PUBLISH_FAILED]}"
        )


def totals(processes: Sequence[ClusterProcess]) -> dict[str, float]:
    summed: dict[str, float] = {"duplicate": 0.0, "retried": 0.0, "parked": 0.0}
    for process in processes:
        for key, value in process.counters().items():
            summed[key] += value
    return summed


def log_totals(processes: Sequence[ClusterProcess]) -> dict[str, int]:
    return {text: sum(p.log_count(text) for p in processes) for text in (CONNECTION_LOST, PUBLISH_FAILED)}


def begin(what: str, clock: InvoiceClock, processes: Sequence[ClusterProcess]) -> Failure:
    return Failure(what, time.monotonic(), clock.count, totals(processes), logs_before=log_totals(processes))


def end(failure: Failure, processes: Sequence[ClusterProcess]) -> None:
    failure.counters_after = totals(processes)
    failure.logs_after = log_totals(processes)
