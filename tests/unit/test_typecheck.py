"""shared/ and services/ type-check under mypy --strict (the settings are pyproject.toml's [tool.mypy]),
so CI fails on a type error: a handler given a port it does not declare, a batched handler that could
open another transaction, an event a handler does not take."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_mypy(*args: str) -> subprocess.CompletedProcess[str]:
    # The cache lives outside the checkout (one per checkout), so a second run takes seconds.
    cache = Path(tempfile.gettempdir()) / f"postpay-mypy-{hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]}"
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(cache), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_shared_and_services_type_check_strictly() -> None:
    result = run_mypy()
    assert result.returncode == 0, f"mypy found type errors:\n{result.stdout}{result.stderr}"
    assert "Success: no issues found" in result.stdout


@pytest.mark.slow
def test_the_type_check_fails_on_a_type_error(tmp_path: Path) -> None:
    """The check above could pass by checking nothing: a wrong handler beside the real code is caught."""
    wrong = tmp_path / "wrong_handler.py"
    wrong.write_text(
        "from shared.bus.handler_context import HandlerContext\n"
        "from shared.bus.topology import Subscription\n"
        "from shared.events.enrollment import TermsAccepted, UserRegistered\n\n\n"
        "def handle(event: TermsAccepted, ctx: HandlerContext) -> None:\n"
        "    ctx.separate_transaction()\n\n\n"
        "WRONG_EVENT = Subscription('x', 'y', (UserRegistered,), handle)\n"
        "BATCHED_WITH_TRANSACTIONS = Subscription('x', 'z', (TermsAccepted,), handle, batch=8)\n"
    )
    result = run_mypy(str(wrong))
    assert result.returncode == 1, result.stdout + result.stderr
    assert f'{wrong.name}:10: error: Argument 4 to "Subscription"' in result.stdout, result.stdout
    assert 'expected "Callable[[UserRegistered, HandlerContext], None]"' in result.stdout, result.stdout
    assert f'{wrong.name}:11: error: Argument 4 to "Subscription"' in result.stdout, result.stdout
    assert 'expected "Callable[[TermsAccepted, DatabaseContext], None]"' in result.stdout, result.stdout
