"""``POSTPAY_CPU_NICENESS``: a background part yields the CPU to a page-serving one on the same machine.

Checked on a real ``postpay run`` process (in-process bus, SQLite file): every one of its threads, the
handler threads started after the setting was applied included, runs at the niceness asked for, and
the setting can only lower a process's priority, never raise it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from shared.settings import KernelSettings
from simulators.smtp import free_port

ROOT = Path(__file__).resolve().parents[2]


def thread_niceness(pid: int) -> dict[str, int]:
    """Each living thread's niceness, read from /proc (field 19 of stat, counted after the command's ')').
    A thread that ends between the listing and the read is left out: it has no priority left to check
    (seen in CI: a short-lived start-up thread)."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        found[task.name] = int(stat[stat.rindex(")") + 2 :].split()[16])
    return found


def started_part(tmp_path: Path, part: str, niceness: str, *, prefix: list[str] | None = None) -> subprocess.Popen:
    health = free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("POSTPAY_")}
    env |= {
        "POSTPAY_DATABASE_URL": f"sqlite:///{tmp_path / 'postpay.db'}",
        "POSTPAY_CPU_NICENESS": niceness,
        "POSTPAY_HEALTH_PORT": str(health),
        "POSTPAY_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [*(prefix or []), sys.executable, "-m", "postpay.cli", "run", part],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"postpay run {part} exited: {process.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{health}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"postpay run {part} did not become ready")


def stopped(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.mark.slow
def test_every_thread_of_the_handlers_runs_at_the_niceness_asked_for(tmp_path: Path) -> None:
    process = started_part(tmp_path, "signup-handlers", "10")
    try:
        niceness = thread_niceness(process.pid)
    finally:
        stopped(process)
    assert len(niceness) > 5, niceness  # the handler threads, the consumer, the relay: all started after
    assert set(niceness.values()) == {10}, niceness


@pytest.mark.slow
def test_the_setting_never_raises_a_priority_the_process_was_started_with(tmp_path: Path) -> None:
    process = started_part(tmp_path, "signup-handlers", "5", prefix=["nice", "-n", "12"])
    try:
        niceness = thread_niceness(process.pid)
    finally:
        stopped(process)
    assert set(niceness.values()) == {12}, niceness


@pytest.mark.parametrize("value", ["-5", "20", "ten"])
def test_a_niceness_outside_what_nice_allows_is_refused_by_name(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTPAY_CPU_NICENESS", value)
    with pytest.raises(ValidationError, match="cpu_niceness"):
        KernelSettings()
