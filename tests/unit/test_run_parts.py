"""``postpay run signup-web`` serves the pages and runs no handler; ``postpay run signup-handlers`` runs the
handlers and serves no page; ``postpay run signup`` runs both. Run for real (in-process bus, SQLite file),
stopped once what it started has been seen."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from postpay.commands import run as run_command
from postpay.commands.run import Part, consumes, serves, services_for
from shared.runtime import Runtime
from simulators.smtp import free_port


@pytest.fixture
def signals_restored() -> Iterator[None]:
    """``postpay run`` installs its own SIGTERM/SIGINT handlers: give pytest its own back."""
    saved = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    yield
    for number, handler in saved.items():
        signal.signal(number, handler)


def test_each_half_of_the_signup_is_the_signup_service_with_one_side_of_it() -> None:
    assert (
        services_for(Part.signup_web) == services_for(Part.signup_handlers) == services_for(Part.signup) == ("signup",)
    )
    assert (consumes(Part.signup_web), serves(Part.signup_web)) == (False, True)
    assert (consumes(Part.signup_handlers), serves(Part.signup_handlers)) == (True, False)
    assert (consumes(Part.signup), serves(Part.signup)) == (True, True)
    # Every other part runs as it did: its consumers and its background tasks together.
    for part in (Part.provisioner, Part.usage_collector, Part.invoicer, Part.scheduler, Part.meter, Part.all):
        assert consumes(part) and serves(part), part
    assert not consumes(Part.relay) and not serves(Part.relay)


def landing_page_answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.usefixtures("suite_logging_restored", "signals_restored")
@pytest.mark.parametrize(
    ("part", "web", "handlers"),
    [
        ("signup-web", True, False),
        ("signup-handlers", False, True),
        ("signup", True, True),
    ],
)
def test_postpay_run_starts_only_the_requested_part(
    part: str, web: bool, handlers: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [name for name in os.environ if name.startswith("POSTPAY_")]:
        monkeypatch.delenv(name)
    port = free_port()
    monkeypatch.setenv("POSTPAY_DATABASE_URL", f"sqlite:///{tmp_path / 'postpay.db'}")
    monkeypatch.setenv("POSTPAY_SIGNUP_PORT", str(port))
    monkeypatch.setenv("POSTPAY_HEALTH_PORT", "0")
    seen: dict[str, Any] = {}
    build_runtime = run_command.build_runtime

    def observe(runtime: Runtime) -> None:
        try:
            deadline = time.monotonic() + 60
            while not runtime._relaying and time.monotonic() < deadline:  # start() has spawned its threads
                time.sleep(0.05)
            if web:
                while not landing_page_answers(port) and time.monotonic() < deadline:
                    time.sleep(0.1)
            else:
                time.sleep(1.0)  # ample for a web server to bind, had one been started
            seen["answered"] = landing_page_answers(port)
            seen["threads"] = sorted(thread.name for thread in runtime._threads)
            seen["consumer"] = runtime.consumer
        finally:
            runtime.stop_event.set()

    def capturing(system: Any, part: Part) -> Runtime:
        runtime = build_runtime(system, part)
        threading.Thread(target=observe, args=(runtime,), daemon=True).start()
        return runtime

    monkeypatch.setattr(run_command, "build_runtime", capturing)
    run_command.run(Part(part), migrate_first=True, health_port=0)

    assert seen["answered"] is web
    assert ("signup-background-0" in seen["threads"]) is web
    assert ("consumer" in seen["threads"]) is handlers and (seen["consumer"] is not None) is handlers
    assert "relay" in seen["threads"]  # every half relays the outbox: the web's registrations go out at once
