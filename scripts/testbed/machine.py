"""The real probes and actions behind the test command's decisions.

Nothing here stops a server or edits a configuration on its own: ``configure_postgres`` runs only when
the decisions allow it (a PostgreSQL this script installed, or the operator's explicit opt-in).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from scripts.testbed.decisions import POSTGRESQL, RABBITMQ, Reach, Server, Tool
from tests.support import infra
from tests.support.private_broker import SBIN_CANDIDATES, SBIN_VARIABLE

# Packages this script installed, one a line: only those it may configure later.
STATE = Path("/var/lib/postpay-tests/installed")
POLICY_RC = Path("/usr/sbin/policy-rc.d")
TRUST_LINE = "host all all 127.0.0.1/32 trust # postpay-test: added by scripts/test"
# The old .ci/run marked its line so; a file holding either is not edited again.
TRUST_MARKERS = ("# postpay-test", "# postpay-ci")


class SetupError(Exception):
    """A step that should have worked did not: the run stops, saying which."""


def with_trust_line(hba: str) -> str:
    """pg_hba.conf with the tests' trusted loopback line first (pg_hba is first match), added once."""
    if any(marker in hba for marker in TRUST_MARKERS):
        return hba
    return f"{TRUST_LINE}\n{hba}"


def _run(
    command: list[str], *, timeout: float = 600, check: bool = True, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SetupError(f"{' '.join(command)}: {exc}") from exc
    if check and result.returncode != 0:
        raise SetupError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return result


def _as_postgres(sql: str) -> str:
    return _run(["su", "postgres", "-c", f'psql -XtAc "{sql}"']).stdout.strip()


class LocalMachine:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    # ---- probes -------------------------------------------------------------------------------------
    def root_on_debian(self) -> bool:
        return os.geteuid() == 0 and Path("/etc/debian_version").exists() and shutil.which("apt-get") is not None

    def docker_answers(self) -> bool:
        return infra.docker_answers()  # the very check the suite makes before starting testcontainers

    def reach(self, server: Server) -> tuple[Reach, str]:
        try:
            socket.create_connection((server.host, server.port), timeout=2).close()
        except OSError:
            return Reach.SILENT, ""
        try:
            if server.is_broker:
                from kombu import Connection

                with Connection(server.url, connect_timeout=3) as connection:
                    connection.connect()
            else:
                import psycopg

                psycopg.connect(server.url, connect_timeout=3).close()
        except Exception as exc:
            return Reach.REFUSES, " ".join(str(exc).split()) or type(exc).__name__
        return Reach.ANSWERS, ""

    def installed(self, server: Server) -> bool:
        if server.is_broker:
            return shutil.which("rabbitmq-server") is not None or Path("/usr/sbin/rabbitmq-server").exists()
        return bool(list(Path("/usr/lib/postgresql").glob("*/bin/postgres"))) and bool(shutil.which("pg_ctlcluster"))

    def has_tool(self, tool: Tool) -> bool:
        if tool.name == "chromium":
            return Path("/usr/bin/chromium").exists()  # the browser tests launch this path
        if tool.name == "rabbitmq-server":
            configured = self.environ.get(SBIN_VARIABLE)
            places = [configured] if configured else list(SBIN_CANDIDATES)
            found = any(Path(p, "rabbitmq-server").exists() for p in places) or self.installed(RABBITMQ)
            return found and shutil.which("erl") is not None
        if tool.name == "php-curl":
            return _php_has_curl()
        return shutil.which(tool.name) is not None

    def installed_by_us(self) -> set[str]:
        try:
            return set(STATE.read_text().split())
        except OSError:
            return set()

    # ---- actions ------------------------------------------------------------------------------------
    def install(self, packages: list[str]) -> None:
        # Recorded first, so an interrupted install is still known as ours on the next run.
        STATE.parent.mkdir(parents=True, exist_ok=True)
        STATE.write_text("".join(f"{name}\n" for name in sorted(self.installed_by_us() | set(packages))))
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        wait = ["-o", "DPkg::Lock::Timeout=600"]  # another apt-get on the machine: wait for it
        with _services_held():
            _run(["apt-get", "update", "-qq", *wait], timeout=1200, env=env)
            _run(
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *wait, *packages], timeout=3600, env=env
            )

    def start(self, server: Server) -> str:
        """Start the server; return how to stop it (it is left running)."""
        if server.is_broker:
            if _run(["rabbitmqctl", "-q", "status"], timeout=60, check=False).returncode == 0:
                _run(["rabbitmqctl", "-q", "start_app"], timeout=120)  # the node runs with its app stopped
            else:
                _run(["rabbitmq-server", "-detached"], timeout=60)
            _run(["rabbitmqctl", "-q", "await_startup"], timeout=300)
            return "rabbitmqctl shutdown"
        version, name = self._cluster()
        _run(["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "start"], timeout=120)
        for _ in range(60):
            if _run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(POSTGRESQL.port)], check=False).returncode == 0:
                break
            time.sleep(1)
        return f"pg_ctlcluster {version} {name} stop"

    def _cluster(self) -> tuple[str, str]:
        """The PostgreSQL cluster on the tests' port (Debian's postinst makes one, <version>/main)."""
        for line in _run(["pg_lsclusters", "-h"]).stdout.splitlines():
            version, name, port, *_ = line.split()
            if port == str(POSTGRESQL.port):
                return version, name
        raise SetupError(
            f"no PostgreSQL cluster listens on port {POSTGRESQL.port} (pg_lsclusters): create one, "
            "e.g. pg_createcluster 15 main"
        )

    def configure_postgres(self) -> list[str]:
        """Let the tests in: trust 127.0.0.1, database 'test'. Returns what it changed, for the user."""
        changes = []
        hba = Path(_as_postgres("show hba_file"))
        text = hba.read_text()
        if with_trust_line(text) != text:
            hba.write_text(with_trust_line(text))
            _as_postgres("select pg_reload_conf()")
            changes.append(
                f"added '{TRUST_LINE}' as the first line of {hba} and reloaded: any local user may now "
                "connect over 127.0.0.1 as any role without a password"
            )
        if _as_postgres("select 1 from pg_database where datname = 'test'") != "1":
            _run(["su", "postgres", "-c", "createdb test"])
            changes.append("created database 'test'")
        return changes

    def broker_handle_limit(self) -> int | None:
        """RabbitMQ's own file-handle limit on this machine's node; None when rabbitmqctl cannot say."""
        result = _run(["rabbitmqctl", "-q", "eval", "file_handle_cache:get_limit()."], timeout=60, check=False)
        answer = result.stdout.strip()
        return int(answer) if result.returncode == 0 and answer.isdigit() else None

    def raise_broker_handle_limit(self, limit: int) -> None:
        _run(["rabbitmqctl", "-q", "eval", f"file_handle_cache:set_limit({int(limit)})."], timeout=60)


@contextlib.contextmanager
def _services_held() -> Iterator[None]:
    """Packages install without starting their services (Debian's policy-rc.d); this script starts only
    what the tests need, and says so. An existing policy-rc.d is the machine's own and left alone."""
    if POLICY_RC.exists():
        yield
        return
    POLICY_RC.write_text("#!/bin/sh\n# written by postpay's scripts/test while it installs packages\nexit 101\n")
    POLICY_RC.chmod(0o755)
    try:
        yield
    finally:
        POLICY_RC.unlink(missing_ok=True)


def _php_has_curl() -> bool:
    """Debian's php-cli comes without curl, which the WHMCS hook needs: without it the hook quietly
    draws no panel."""
    php = shutil.which("php")
    if php is None:
        return False
    probe = subprocess.run([php, "-r", "exit(function_exists('curl_init') ? 0 : 1);"], capture_output=True, timeout=30)
    return probe.returncode == 0
