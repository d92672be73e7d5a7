"""``postpay sim whmcs``: serve the simulator with uvicorn, keeping its state in a JSON file."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette

from simulators.faults import FaultConfig, FaultInjector
from simulators.whmcs.app import create_app
from simulators.whmcs.persistence import load_file, save_file
from simulators.whmcs.state import WhmcsState


def build_app(
    seed: int = 0,
    state_file: Path | None = None,
    faults_file: Path | None = None,
    credentials: dict[str, Any] | None = None,
) -> Starlette:
    """The app ``serve`` runs: state from ``state_file`` when it exists, fault rules from
    ``faults_file``; ``seed`` seeds the fault injector."""
    faults = FaultInjector(seed=seed)
    if faults_file is not None:
        config = FaultConfig.model_validate(json.loads(faults_file.read_text(encoding="utf-8")))
        faults.configure(config.model_copy(update={"seed": seed}))
    state = WhmcsState()
    if state_file is not None and state_file.exists():
        load_file(state, state_file)
    app = create_app(state, seed=seed, faults=faults, **(credentials or {}))
    app.state.state_file = state_file
    return app


class _SavingServer(uvicorn.Server):
    """Saves the state as the last step of a graceful shutdown.

    uvicorn re-raises the captured signal after ``serve`` returns; with SIGTERM (docker stop,
    systemd) that ends the process before a ``finally`` could run, so the save happens in here.
    """

    def __init__(self, config: uvicorn.Config, save: Callable[[], None]) -> None:
        super().__init__(config)
        self._save = save

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        self._save()


def serve(
    host: str = "127.0.0.1",
    port: int = 8482,
    seed: int = 0,
    state_file: Path | None = None,
    faults_file: Path | None = None,
    credentials: dict[str, Any] | None = None,
) -> None:
    """``credentials``: identifier, secret, accesskey, admin_password (see ``create_app``)."""
    app = build_app(seed, state_file, faults_file, credentials)

    def save() -> None:
        if state_file is not None:
            save_file(app.state.sim, state_file)

    config = uvicorn.Config(app, host=host, port=port, lifespan="off", access_log=False)
    _SavingServer(config, save).run()
