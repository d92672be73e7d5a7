"""Giving the signup web CPUs of its own in a benchmark run, as a deployment does (Kubernetes' static CPU
manager, Compose's ``cpuset``, systemd's ``CPUAffinity=``), to show what a handler backlog does to the
landing page when the two do not share a core.

``--web-cpus 0`` runs ``signup-web`` and the landing-page prober (which stands in for a customer's
browser on another machine) on CPU 0, and every other process of the run (the handlers, the load
generator, the SMTP sink, the simulators, the benchmark itself) on the rest. With ``--pin-servers``,
PostgreSQL's and RabbitMQ's processes are moved to the rest too for the run, and put back as they were
after it: on a real deployment they run on machines of their own. They are put back when the run ends,
fails, is interrupted or is sent SIGTERM; only a SIGKILL leaves them where they were moved (put them
back with ``taskset -a -p -c <every CPU> <pid>``; the moved pids are printed at the start).
"""

from __future__ import annotations

import argparse
import os
import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psutil

# PostgreSQL's processes, and RabbitMQ's Erlang VM with its port mapper.
SERVER_PROCESSES = ("postgres", "beam.smp", "epmd")


def parse_cpus(text: str) -> frozenset[int]:
    """A CPU list as taskset(1) writes it (``0``, ``0,2``, ``1-3``); only CPUs this process may use."""
    cpus: set[int] = set()
    for item in text.split(","):
        low, _, high = item.strip().partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError:
            raise ValueError(f"{text!r} is not a CPU list such as 0 or 0,2-3") from None
        if first < 0 or last < first:
            raise ValueError(f"{item.strip()!r} in {text!r} is not a CPU range")
        cpus.update(range(first, last + 1))
    allowed = os.sched_getaffinity(0)
    if not cpus <= allowed:
        raise ValueError(
            f"CPUs {sorted(cpus - allowed)} are not available here (this process may use {sorted(allowed)})"
        )
    if cpus == allowed:
        raise ValueError(f"--web-cpus {text} leaves no CPU for the rest of the run")
    return frozenset(cpus)


def cpus_argument(text: str) -> frozenset[int]:
    """``parse_cpus`` as an argparse type: its reason shown, not argparse's "invalid value"."""
    try:
        return parse_cpus(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cpu_list(cpus: frozenset[int] | set[int]) -> str:
    return ",".join(str(cpu) for cpu in sorted(cpus))


def on_cpus(argv: Sequence[str], cpus: frozenset[int] | None) -> list[str]:
    """``argv`` started on ``cpus`` (all its threads: taskset sets the affinity before the program runs)."""
    return list(argv) if cpus is None else ["taskset", "--cpu-list", cpu_list(cpus), *argv]


def pin_tasks(pid: int, cpus: frozenset[int] | set[int]) -> None:
    """Every thread of ``pid`` onto ``cpus`` (the affinity is a thread's, so each is set)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cpus)
        except ProcessLookupError:
            continue  # a thread that ended meanwhile


@contextmanager
def servers_pinned(cpus: frozenset[int] | None, names: Sequence[str] = SERVER_PROCESSES) -> Iterator[dict[int, str]]:
    """PostgreSQL's and RabbitMQ's processes on ``cpus`` while inside, then back on the CPUs each had;
    yields what each was moved from ({pid: cpu list}). Nothing is moved when ``cpus`` is None.

    A process that cannot be moved (another user's, without the privilege) fails the run before it
    starts, rather than leaving a measurement of a set-up that was not the one asked for."""
    if cpus is None:
        yield {}
        return
    before: dict[int, frozenset[int]] = {}
    # SIGTERM would end the interpreter without running the finally below; as an exception it does.
    previous = signal.signal(signal.SIGTERM, _raise_system_exit)
    try:
        for process in psutil.process_iter(["name"]):
            if process.info["name"] not in names:
                continue
            try:
                before[process.pid] = frozenset(os.sched_getaffinity(process.pid))
                pin_tasks(process.pid, cpus)
            except PermissionError as exc:
                raise PermissionError(
                    f"cannot move {process.info['name']} (pid {process.pid}) to CPUs {cpu_list(cpus)}: {exc}; "
                    "run as its owner or root, or without --pin-servers"
                ) from exc
            except (ProcessLookupError, FileNotFoundError, psutil.NoSuchProcess):
                before.pop(process.pid, None)
        if not before:
            raise RuntimeError(f"--pin-servers found none of {', '.join(names)} running on this machine")
        moved = {pid: cpu_list(old) for pid, old in before.items()}
        print(f"servers moved to CPUs {cpu_list(cpus)} for the run (pid: CPUs before): {moved}", flush=True)
        yield moved
    finally:
        for pid, old in before.items():
            try:
                pin_tasks(pid, old)
            except (ProcessLookupError, FileNotFoundError):
                continue
        signal.signal(signal.SIGTERM, previous)


def _raise_system_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)
