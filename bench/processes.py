"""Child processes of a benchmark: start, wait until they answer, measure CPU and memory, stop.

CPU is the kernel's account of user + system seconds of the process (all its threads); peak memory is
``VmHWM`` from ``/proc/<pid>/status``, the high-water mark of its resident set over its whole life,
so no sampling interval can miss a spike.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil

PYTHON = sys.executable
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Child:
    name: str
    role: str  # "postpay", "simulator"
    popen: subprocess.Popen[bytes]
    log_path: Path
    cpu_mark: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def cpu_seconds(self) -> float:
        times = psutil.Process(self.pid).cpu_times()
        return float(times.user + times.system)

    def mark_cpu(self) -> None:
        self.cpu_mark = self.cpu_seconds()

    def cpu_since_mark(self) -> float:
        return self.cpu_seconds() - self.cpu_mark

    def peak_rss_bytes(self) -> int:
        return _status_kib(self.pid, "VmHWM") * 1024

    def rss_bytes(self) -> int:
        return _status_kib(self.pid, "VmRSS") * 1024

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (a graceful drain), then SIGKILL if it does not go."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        return self.popen.returncode

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {key} for process {pid}")


def start(name: str, role: str, argv: Sequence[str], *, env: dict[str, str], log_dir: Path, cwd: Path) -> Child:
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            list(argv), env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    return Child(name, role, popen, log_path)


def child_env(settings: dict[str, str]) -> dict[str, str]:
    """The parent's environment without any POSTPAY_* of its own, plus ``settings``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("POSTPAY_")}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(settings)
    return env


def wait_http(child: Child, url: str, *, timeout: float = 120.0) -> None:
    """Until ``url`` answers 200 (the child is up and, for /readyz, connected), or fail with its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited with {child.popen.returncode}:\n{child.tail()}")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{child.name} did not answer {url} within {timeout}s:\n{child.tail()}")


def stop_all(children: Sequence[Child]) -> None:
    for child in children:
        if child.alive():
            child.popen.send_signal(signal.SIGTERM)
    for child in children:
        child.stop()


def system_cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine (every core, every process: ours, the broker's, others')."""
    times = psutil.cpu_times()
    return float(times.user + times.nice + times.system + times.irq + times.softirq + getattr(times, "steal", 0.0))


def service_cpu_seconds(names: Sequence[str]) -> float:
    """CPU seconds so far of every process named one of ``names`` (the broker, the database), with their
    reaped children's (PostgreSQL's backends that ended). Other engineers' load on them is included."""
    total = 0.0
    for process in psutil.process_iter(["name"]):
        try:
            if process.info["name"] in names:
                times = process.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


class BrokerProcess:
    """The RabbitMQ node serving the AMQP URL's port (found by its listening socket, since other
    nodes, e.g. a test's private broker, may run on the same machine)."""

    def __init__(self, amqp_url: str) -> None:
        port = urlsplit(amqp_url).port or 5672
        self.pid = next(
            (
                c.pid
                for c in psutil.net_connections("tcp")
                if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid
            ),
            None,
        )

    def cpu_seconds(self) -> float:
        if self.pid is None:
            return float("nan")
        try:
            times = psutil.Process(self.pid).cpu_times()
        except psutil.NoSuchProcess:
            return float("nan")
        return float(times.user + times.system)
