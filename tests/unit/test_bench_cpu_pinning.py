"""bench.cpu_pinning: the CPU lists the signup flood takes for its web, and moving the servers' processes
for a run and back (on a process of the test's own, never the machine's real servers)."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from bench.cpu_pinning import cpus_argument, on_cpus, parse_cpus, servers_pinned

ALLOWED = frozenset(os.sched_getaffinity(0))
FIRST = min(ALLOWED)


def test_a_cpu_list_is_read_as_taskset_writes_it() -> None:
    if len(ALLOWED) < 2:
        pytest.fail("this test needs a machine with two CPUs or more")
    second = sorted(ALLOWED)[1]
    assert parse_cpus(str(FIRST)) == {FIRST}
    assert parse_cpus(f" {FIRST}-{FIRST} ") == {FIRST}
    if second == FIRST + 1 and len(ALLOWED) > 2:
        assert parse_cpus(f"{FIRST}-{second}") == {FIRST, second}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "not a CPU list"),
        ("zero", "not a CPU list"),
        ("1-0", "not a CPU range"),
        ("-1", "not a CPU list"),
        ("4096", "not available here"),
        (",".join(str(cpu) for cpu in sorted(ALLOWED)), "leaves no CPU"),
    ],
)
def test_a_list_that_is_not_one_or_leaves_nothing_for_the_rest_is_refused_with_its_reason(
    text: str, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_cpus(text)
    with pytest.raises(argparse.ArgumentTypeError, match=reason):
        cpus_argument(text)


def test_a_command_is_started_through_taskset_only_when_cpus_are_given() -> None:
    assert on_cpus(["python", "-V"], None) == ["python", "-V"]
    assert on_cpus(["python", "-V"], frozenset({3, 1})) == ["taskset", "--cpu-list", "1,3", "python", "-V"]


def test_the_servers_are_moved_for_the_run_and_put_back_as_they_were(tmp_path: Path) -> None:
    name = f"pin{uuid.uuid4().hex[:8]}"  # unique, and within the 15 characters of a process name
    program = tmp_path / name
    shutil.copy(shutil.which("sleep") or "/bin/sleep", program)
    server = subprocess.Popen([str(program), "60"])
    try:
        with servers_pinned(frozenset({FIRST}), names=(name,)) as moved:
            assert os.sched_getaffinity(server.pid) == {FIRST}
            assert moved == {server.pid: ",".join(str(cpu) for cpu in sorted(ALLOWED))}
        assert os.sched_getaffinity(server.pid) == ALLOWED
        with servers_pinned(None, names=(name,)) as moved:
            assert moved == {} and os.sched_getaffinity(server.pid) == ALLOWED
    finally:
        server.kill()
        server.wait()


def test_pinning_servers_that_are_not_running_fails_the_run_instead_of_measuring_another_set_up() -> None:
    with pytest.raises(RuntimeError, match="found none"), servers_pinned(frozenset({FIRST}), names=("no-such-server",)):
        pass


def test_a_sigterm_during_the_run_still_puts_the_servers_back(tmp_path: Path) -> None:
    name = f"pin{uuid.uuid4().hex[:8]}"
    program = tmp_path / name
    shutil.copy(shutil.which("sleep") or "/bin/sleep", program)
    server = subprocess.Popen([str(program), "60"])
    handler_before = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit), servers_pinned(frozenset({FIRST}), names=(name,)):
            assert os.sched_getaffinity(server.pid) == {FIRST}
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises before this ends
        assert os.sched_getaffinity(server.pid) == ALLOWED
        assert signal.getsignal(signal.SIGTERM) == handler_before
    finally:
        server.kill()
        server.wait()
