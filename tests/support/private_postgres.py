"""A PostgreSQL cluster of the test's own, for tests that create roles: the shared server at
127.0.0.1:5432 serves every other test, and its roles are not a test's to add.

    with PrivatePostgres(tmp_path) as postgres:
        postgres.sql("CREATE ROLE ...")
        db = Database(postgres.url("postpay_signup"))

Local connections are trusted (the tests are about what each role may do, not about passwords). As
root, the cluster runs as the ``postgres`` user, as the packaged scripts would.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.private_broker import free_port

BIN_CANDIDATES = ("/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin", "/usr/local/bin", "/usr/bin")


def postgres_bin() -> Path:
    for candidate in BIN_CANDIDATES:
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    pytest.fail("this test needs a private PostgreSQL cluster: install PostgreSQL (initdb, pg_ctl)", pytrace=False)


class PrivatePostgres:
    def __init__(self, base: Path) -> None:
        self.base = Path(base)
        self.bin = postgres_bin()
        self.port = free_port()
        self.data = self.base / "data"
        self.user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        self.base.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            os.chown(self.base, self.user.pw_uid, self.user.pw_gid)

    def _run(self, *command: str, env: dict[str, str] | None = None, input: str | None = None) -> str:
        extra: dict[str, Any] = {}
        if self.user is not None:
            extra = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        result = subprocess.run(
            list(command),
            cwd=self.base,
            env={**self.environment(), **(env or {})},
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
            **extra,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stdout}{result.stderr}")
        return result.stdout

    def environment(self) -> dict[str, str]:
        """libpq's variables for this cluster (the socket in ``base``)."""
        return {
            "PATH": f"{self.bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "PGHOST": str(self.base),
            "PGPORT": str(self.port),
            "LANG": "C.UTF-8",
            "HOME": str(self.base),
        }

    def start(self) -> PrivatePostgres:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1"
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.base / "log"), "-w", "start"
        )
        return self

    def sql(self, statement: str, *, user: str = "postgres", database: str = "postgres") -> str:
        return self._run("psql", "-v", "ON_ERROR_STOP=1", "-At", "-U", user, "-d", database, "-c", statement)

    def script(self, path: Path, env: dict[str, str]) -> str:
        """Run a shell script (an init script of the postgres image) against this cluster."""
        return self._run("sh", str(path), env=env)

    def url(self, user: str, database: str = "postpay") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PrivatePostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
