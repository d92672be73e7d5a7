"""Loaded by every postpay process bench.idle starts (this directory is on their PYTHONPATH): counts
the database commits the process makes and, on SIGUSR1, writes the count so far to
``$POSTPAY_BENCH_COMMITS_DIR/<pid>`` (PostgreSQL's own counter also sees other engineers' work)."""

from __future__ import annotations

import os
import signal

_directory = os.environ.get("POSTPAY_BENCH_COMMITS_DIR")
if _directory:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    _count = [0]

    @event.listens_for(Engine, "commit")
    def _counted(_connection: object) -> None:
        _count[0] += 1

    def _report(_signum: int, _frame: object) -> None:
        with open(os.path.join(_directory, str(os.getpid())), "w") as out:
            out.write(str(_count[0]))

    signal.signal(signal.SIGUSR1, _report)
