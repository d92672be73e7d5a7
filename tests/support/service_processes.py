"""postpay's own services as separate OS processes, started the way production starts them
(``postpay run <part> --no-migrate``), configured only through ``POSTPAY_*`` variables, and killable.

    env = ProcessEnvironment(bus_url, db, namespace, upstreams).variables()
    invoicer = ServiceProcess("invoicer", env, log_dir).start()
    invoicer.kill()      # SIGKILL: no cleanup, unacknowledged work goes back to the broker
    invoicer.start()     # a fresh process takes over

The test's PostgreSQL schema travels in the database URL (``options=-csearch_path=...``), so the child
processes see the same tables as the test without any test-only code path in postpay.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote, urlsplit

from shared.db import Database
from tests.support.system import SOLUSVM_TOKEN, Upstreams

ROOT = Path(__file__).resolve().parents[2]


def database_url_with_schema(db: Database) -> str:
    """The URL of ``db`` that lands in its schema, for a process that only reads the URL."""
    if not db.schema:
        return db.url
    separator = "&" if "?" in db.url else "?"
    return f"{db.url}{separator}options={quote(f'-csearch_path={db.schema}', safe='')}"


@dataclass
class ProcessEnvironment:
    """The ``POSTPAY_*`` settings every service process of one test shares."""

    amqp_url: str
    db: Database
    namespace: str
    upstreams: Upstreams
    token_prices: Mapping[str, Decimal]
    retry_delays: str = "0.3,1,2,4,8"
    extra: dict[str, str] = field(default_factory=dict)

    def variables(self) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("POSTPAY_")}
        return {
            **inherited,
            "POSTPAY_AMQP_URL": self.amqp_url,
            # The test's one broker login speaks for every producer (test_broker_identity.py runs a user each).
            "POSTPAY_BROKER_USERS": urlsplit(self.amqp_url).username or "guest",
            "POSTPAY_DATABASE_URL": database_url_with_schema(self.db),
            "POSTPAY_BUS_NAMESPACE": self.namespace,
            "POSTPAY_RETRY_DELAYS": self.retry_delays,
            "POSTPAY_PREFETCH": "32",
            "POSTPAY_CONCURRENCY": "4",
            "POSTPAY_HEARTBEAT": "10",
            "POSTPAY_RELAY_POLL_SECONDS": "0.1",
            "POSTPAY_LOG_LEVEL": "INFO",
            "POSTPAY_SOLUSVM_URL": self.upstreams.solusvm_url,
            "POSTPAY_SOLUSVM_API_TOKEN": SOLUSVM_TOKEN,
            "POSTPAY_WHMCS_URL": self.upstreams.whmcs.url,
            "POSTPAY_WHMCS_IDENTIFIER": self.upstreams.whmcs.identifier,
            "POSTPAY_WHMCS_SECRET": self.upstreams.whmcs.secret,
            "POSTPAY_UPSTREAM_CONNECT_TIMEOUT": "2",
            "POSTPAY_UPSTREAM_READ_TIMEOUT": "1",
            "POSTPAY_UPSTREAM_MAX_ATTEMPTS": "4",
            "POSTPAY_UPSTREAM_DEADLINE": "8",
            # Longer than the simulator ever works on a request (its slowest fault hangs 2 s).
            "POSTPAY_WHMCS_UNCERTAIN_QUIET_SECONDS": "3",
            "POSTPAY_TOKEN_PRICES": json.dumps({code: str(price) for code, price in self.token_prices.items()}),
            **self.extra,
        }


class ServiceProcess:
    """One ``postpay run <part>`` process, restartable; its output goes to ``<log_dir>/<label>.log``."""

    def __init__(self, part: str, env: Mapping[str, str], log_dir: Path, *, label: str | None = None) -> None:
        self.part = part
        self.label = label or part
        self.env = dict(env)
        self.log = log_dir / f"{self.label}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0
        self._log_offset = 0
        self._ready = False

    def start(self) -> ServiceProcess:
        output = self.log.open("ab")
        self._log_offset = output.tell()
        self._ready = False
        self.process = subprocess.Popen(
            [sys.executable, "-m", "postpay.cli", "run", self.part, "--no-migrate"],
            cwd=ROOT,
            env=self.env,
            stdout=output,
            stderr=output,
        )
        output.close()
        self.starts += 1
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to finish, acknowledge or clean up anything."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self.kills += 1

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM, and the exit code after the graceful shutdown."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.running:
            assert self.process is not None
            self.process.kill()
            self.process.wait(timeout=10)

    def crashed(self) -> str | None:
        """If the process exited by itself (not killed by the test), why: the tail of its log."""
        if self.process is None or self.process.poll() is None or self.process.returncode == -signal.SIGKILL:
            return None
        return f"{self.label} exited with {self.process.returncode}:\n{self.log_tail()}"

    def logged_since_start(self, text: str) -> bool:
        """Whether this run of the process (not an earlier one) has logged ``text``."""
        if not self.log.exists():
            return False
        with self.log.open("rb") as log:
            log.seek(self._log_offset)
            return text.encode() in log.read()

    def ready(self, text: str) -> bool:
        """Whether this run has logged ``text`` yet (remembered once seen)."""
        self._ready = self._ready or self.logged_since_start(text)
        return self._ready

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else "(no log)"


def wait_for_log(process: ServiceProcess, text: str, *, timeout: float = 60.0) -> None:
    """Until the process's log says ``text`` (e.g. that its consumer is consuming)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.logged_since_start(text):
            return
        if process.crashed():
            raise AssertionError(process.crashed())
        time.sleep(0.1)
    raise AssertionError(f"{process.label} did not log {text!r} in {timeout}s:\n{process.log_tail()}")
