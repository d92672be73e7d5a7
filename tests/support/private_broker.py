"""A RabbitMQ node of the test's own, for tests that stop, restart or cut the broker.

The shared broker at 127.0.0.1:5672 serves every other test (and every other engineer) at once: a test
that takes it down breaks them. This node has its own name, ports, data and logs under a temporary
directory, its own config (the system's /etc/rabbitmq files name port 5672 and would collide), its own
Erlang cookie, and nothing else in common with the shared one but the epmd daemon.

    with PrivateBroker(tmp_path) as broker:
        bus = RabbitBus(broker.url, ...)
        broker.stop_app(); broker.start_app()   # the app inside the running node
        broker.restart()                        # the whole node, data kept (durable queues survive)
        broker.import_definitions({...})        # users and permissions, on this node only

rabbitmq-server drops to the ``rabbitmq`` user when run by root, so as root the node runs as that user
and everything it writes is owned by it; as any other user it runs as that user.

``tests/support/private_cluster.py`` joins three of these nodes (one shared cookie) into a cluster.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from shared.bus.rabbit import RabbitBus
from shared.bus.topology import Naming

SBIN_VARIABLE = "POSTPAY_TEST_RABBITMQ_SBIN"
SBIN_CANDIDATES = ("/usr/lib/rabbitmq/bin", "/usr/local/lib/rabbitmq/bin")
START_TIMEOUT = 90.0


def rabbitmq_sbin() -> Path:
    """The directory of the real rabbitmq-server and rabbitmqctl scripts (not Debian's su wrapper)."""
    configured = os.environ.get(SBIN_VARIABLE)
    candidates = [configured] if configured else list(SBIN_CANDIDATES)
    found = shutil.which("rabbitmq-server")
    if found:
        candidates.append(str(Path(found).resolve().parent))
    for candidate in candidates:
        if candidate and (Path(candidate) / "rabbitmq-server").exists():
            return Path(candidate)
    pytest.fail(
        f"this test needs a private RabbitMQ node: install rabbitmq-server or set {SBIN_VARIABLE} to the "
        "directory holding rabbitmq-server and rabbitmqctl",
        pytrace=False,
    )


def worker_label() -> str:
    """This pytest process among xdist's workers (gw0, gw1...; "main" without xdist): in the private
    nodes' names and directories, which are unique per process anyway, to tell whose a leftover is."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run_as() -> pwd.struct_passwd | None:
    """Root runs the node as ``rabbitmq`` (as the packaged scripts would); anyone else as themselves."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("rabbitmq")
    except KeyError:
        return None


class PrivateBroker:
    def __init__(self, base: Path, *, name: str | None = None, cookie: str | None = None) -> None:
        self.base = Path(base)
        # Nodes that are to form a cluster must share their Erlang cookie; a lone node gets its own.
        self.cookie = cookie or secrets.token_hex(16)
        self.sbin = rabbitmq_sbin()
        self.port = free_port()
        self.dist_port = free_port()
        self.nodename = f"{name or f'postpay-test-{worker_label()}-{os.getpid()}-{self.port}'}@localhost"
        self.user = _run_as()
        self.process: subprocess.Popen[bytes] | None = None
        self._prepare()

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def log_dir(self) -> Path:
        return self.base / "log"

    # -- files ---------------------------------------------------------------------------------
    def _prepare(self) -> None:
        for directory in ("mnesia", "log", "home"):
            (self.base / directory).mkdir(parents=True, exist_ok=True)
        (self.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\n"
            "loopback_users.guest = true\n"
            # The shared disk of a test machine is often fuller than RabbitMQ's default alarm allows.
            "disk_free_limit.absolute = 10MB\n"
            "log.console = false\n"
            "log.file.level = info\n"
        )
        # A quorum queue's dead-letter worker can start before the default exchange is back after a
        # restart; it then retries only after this timeout (2 min by default), and a retry that
        # expired meanwhile waits that long. As in deploy/, a short one: duplicates are harmless.
        (self.base / "advanced.config").write_text(
            "[{rabbit, [{dead_letter_worker_publisher_confirm_timeout, 5000}]}].\n"
        )
        (self.base / "rabbitmq-env.conf").write_text("")  # replaces /etc/rabbitmq/rabbitmq-env.conf (NODENAME)
        (self.base / "enabled_plugins").write_text("[].\n")
        cookie = self.base / "home" / ".erlang.cookie"
        cookie.write_text(self.cookie)
        cookie.chmod(0o400)
        if self.user is not None:
            for path in [self.base, *self.base.rglob("*")]:
                os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def _environment(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.base / "home"),
            "LANG": "C.UTF-8",
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONF_ENV_FILE": str(self.base / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.base / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.log_dir),
            "RABBITMQ_PID_FILE": str(self.base / "rabbitmq.pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_FLAGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def _popen_user(self) -> dict[str, Any]:
        if self.user is None:
            return {}
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}

    # -- the node --------------------------------------------------------------------------------
    def start(self, timeout: float = START_TIMEOUT) -> PrivateBroker:
        if self.running:
            return self
        self.launch()
        self.await_startup(timeout)
        return self

    def launch(self) -> None:
        """Start the node's process without waiting for it (several nodes then boot side by side)."""
        if self.running:
            return
        output = (self.base / "server.out").open("ab")
        self.process = subprocess.Popen(
            [str(self.sbin / "rabbitmq-server")],
            cwd=self.base,
            env=self._environment(),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **self._popen_user(),
        )
        output.close()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def await_startup(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"private RabbitMQ node exited with {self.process.returncode}:\n{self.diagnosis()}")
            if self.accepts_connections():
                return
            time.sleep(0.3)
        raise RuntimeError(f"private RabbitMQ node did not start in {timeout}s:\n{self.diagnosis()}")

    def accepts_connections(self) -> bool:
        """An AMQP handshake succeeds (a listening socket alone is not enough while the app boots)."""
        import amqp

        try:
            connection = amqp.Connection(
                f"127.0.0.1:{self.port}", userid="guest", password="guest", connect_timeout=1.0
            )
            connection.connect()
            connection.close()
            return True
        except Exception:
            return False

    def ctl(self, *args: str, timeout: float = 120.0) -> str:
        result = subprocess.run(
            [str(self.sbin / "rabbitmqctl"), "-n", self.nodename, *args],
            cwd=self.base,
            env=self._environment(),
            capture_output=True,
            timeout=timeout,
            **self._popen_user(),
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"rabbitmqctl {' '.join(args)} failed ({result.returncode}): "
                f"{result.stdout.decode(errors='replace')}{result.stderr.decode(errors='replace')}"
            )
        return result.stdout.decode(errors="replace")

    # -- users and permissions (this node's own; never the shared broker's) ------------------------
    def import_definitions(self, document: dict[str, Any]) -> None:
        """Users, permissions, topic permissions, exchanges... as ``rabbitmqctl import_definitions``."""
        path = self.base / f"definitions-{uuid.uuid4().hex[:8]}.json"
        path.write_text(json.dumps(document))
        path.chmod(0o644)
        try:
            self.ctl("import_definitions", str(path))
        finally:
            path.unlink(missing_ok=True)

    def add_user(self, user: str, password: str) -> None:
        self.ctl("add_user", user, password)

    def set_permissions(self, user: str, configure: str, write: str, read: str, *, vhost: str = "/") -> None:
        self.ctl("set_permissions", "-p", vhost, user, configure, write, read)

    def set_topic_permissions(self, user: str, exchange: str, write: str, read: str, *, vhost: str = "/") -> None:
        self.ctl("set_topic_permissions", "-p", vhost, user, exchange, write, read)

    def delete_user(self, user: str) -> None:
        self.ctl("delete_user", user)

    def users(self) -> set[str]:
        return {
            line.split("\t")[0]
            for line in self.ctl("list_users", "--quiet", "--no-table-headers").splitlines()
            if line.strip()
        }

    def url_as(self, user: str, password: str) -> str:
        return f"amqp://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{self.port}/"

    def stop_app(self) -> None:
        """The broker goes away for clients (connections drop, connects are refused); the node stays."""
        self.ctl("stop_app")

    def start_app(self, timeout: float = START_TIMEOUT) -> None:
        self.ctl("start_app")
        self.await_startup(timeout)

    def restart(self, timeout: float = START_TIMEOUT) -> None:
        """Stop the whole node (the Erlang VM exits) and start it again on the same data."""
        self.shutdown()
        self.start(timeout)

    def shutdown(self, timeout: float = 60.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL to the whole node (the Erlang VM and its helpers): no goodbye to clients or peers."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(30)

    def stop(self) -> None:
        """Stop the node for good (whatever state it is in) and remove its files."""
        try:
            self.shutdown()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def diagnosis(self) -> str:
        """The tail of what the node wrote: why it did not start, in its own words."""
        parts = []
        for path in [self.base / "server.out", *sorted(self.log_dir.glob("*.log"))]:
            if path.exists():
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts) or "(no output)"

    def __enter__(self) -> PrivateBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(scope="session")
def private_broker() -> Iterator[PrivateBroker]:
    """One private node per test session (under xdist, per worker that asks), started when a test first
    asks for it, always stopped."""
    # Not under pytest's own temporary tree: that is private to its owner (0700), and the node may run as
    # another user.
    broker = PrivateBroker(Path(tempfile.mkdtemp(prefix=f"postpay-rabbitmq-{worker_label()}-")))
    # A SIGTERM to pytest (a CI timeout, a developer's kill) would otherwise end it without teardown and
    # leave the node running: make it an exception, so the ``finally`` below stops the node.
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()
        if previous is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _exit_on_sigterm(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


@pytest.fixture
def private_broker_up(private_broker: PrivateBroker) -> Iterator[PrivateBroker]:
    """The session's private node, brought back up after the test whatever the test did to it."""
    yield private_broker
    if private_broker.process is None or private_broker.process.poll() is not None:
        private_broker.start()
    elif not private_broker.accepts_connections():
        private_broker.start_app()


@pytest.fixture
def private_rabbit_bus(private_broker_up: PrivateBroker) -> Iterator[RabbitBus]:
    """A bus on the private node, in a namespace of its own, with quick retries (like ``rabbit_bus``)."""
    bus = RabbitBus(
        private_broker_up.url,
        naming=Naming(f"test-{uuid.uuid4().hex[:10]}"),
        retry_delays=[0.2, 0.5],
        confirm_timeout=10,
    )
    yield bus
    if bus.subscriptions and private_broker_up.accepts_connections():
        bus.delete_topology(bus.subscriptions)
