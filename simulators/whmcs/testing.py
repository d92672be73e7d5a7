"""The WHMCS simulator on loopback inside a test process, with the handles tests reach for.

with RunningWhmcs() as whmcs:
    client = WhmcsClient(whmcs.url, SecretStr(whmcs.identifier), SecretStr(whmcs.secret))
    whmcs.fault(kind="commit_then_fail", route="CreateInvoice", count=1)
    ...
    assert whmcs.calls["CreateInvoice"] == 1
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from simulators.common import ServerThread, SimClock
from simulators.faults import FaultConfig, FaultRule
from simulators.whmcs.app import create_app
from simulators.whmcs.persistence import dump_state, load_state


class RunningWhmcs:
    """``create_app(**options)`` served by a :class:`ServerThread`; ``reset()`` between tests."""

    def __init__(self, *, now: datetime | None = None, **options: Any) -> None:
        self.initial_now = now
        self.identifier = options.setdefault("identifier", "demo-identifier")
        self.secret = options.setdefault("secret", "demo-secret")
        options.setdefault("clock", SimClock(now))
        self.app = create_app(**options)
        self.state = self.app.state.sim
        self.faults = self.app.state.faults
        self.clock: SimClock = self.app.state.clock
        self.calls = self.app.state.calls
        self.access = self.app.state.access
        self._initial_access = (
            set(self.access.allowed_ips or ()) if self.access.allowed_ips is not None else None,
            self.access.permitted_actions,
        )
        # Everything reset() goes back to: currencies, tax, templates and any data given at start.
        self._initial_state = dump_state(self.state)
        self.server = ServerThread(self.app)
        self.http = httpx.Client(timeout=10.0)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> RunningWhmcs:
        self.server.start()
        return self

    def stop(self) -> None:
        self.http.close()
        self.server.stop()

    def __enter__(self) -> RunningWhmcs:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """The state, clock and access as they started; no faults, no counted calls."""
        load_state(self.state, self._initial_state)
        self.faults.configure(FaultConfig(seed=0))
        self.calls.clear()
        if self.initial_now is not None:
            self.clock.set(self.initial_now)
        else:
            self.clock.follow_wall_time()
        self.access.allowed_ips, self.access.permitted_actions = self._initial_access

    def fault(self, **rule: Any) -> None:
        self.faults.add(FaultRule.model_validate(rule))

    def call(self, action: str, http: httpx.Client | None = None, **params: Any) -> httpx.Response:
        """One raw API request with valid credentials (contract tests look at the wire shape)."""
        data = {"action": action, "identifier": self.identifier, "secret": self.secret, "responsetype": "json"}
        data.update({k: str(v) for k, v in params.items()})
        return (http or self.http).post(f"{self.url}/includes/api.php", data=data)
