"""``postpay sim solusvm``: serve the simulator with uvicorn, keeping its state in a JSON file."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import uvicorn

from simulators.faults import FaultConfig, FaultInjector
from simulators.solusvm.app import DEFAULT_API_TOKEN, create_app
from simulators.solusvm.persistence import load_from_file, save_to_file
from simulators.solusvm.state import SimState


def build_app(
    seed: int = 0,
    state_file: Path | None = None,
    faults_file: Path | None = None,  # type: ignore[no-untyped-def]
    api_token: str = DEFAULT_API_TOKEN,
):
    """The app ``serve`` runs: state loaded from ``state_file`` when it exists, fault rules from ``faults_file``.

    The ``--seed`` option seeds the fault injector; the rules come from the file.
    """
    faults = FaultInjector(seed=seed)
    if faults_file is not None:
        config = FaultConfig.model_validate(json.loads(faults_file.read_text(encoding="utf-8")))
        faults.configure(config.model_copy(update={"seed": seed}))
    state = None
    if state_file is not None and state_file.exists():
        state = SimState(seed=seed)
        load_from_file(state, state_file)
    return create_app(state, seed=seed, faults=faults, state_file=state_file, api_token=api_token)


class _SavingServer(uvicorn.Server):
    """Saves the state as the last step of a graceful shutdown.

    uvicorn re-raises the captured signal once ``serve`` returns; for SIGTERM (docker stop, systemd)
    that kills the process before any ``finally`` would run, so the save happens here, inside it.
    """

    def __init__(self, config: uvicorn.Config, save: Callable[[], None]) -> None:
        super().__init__(config)
        self._save = save

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        self._save()


def serve(
    host: str,
    port: int,
    seed: int,
    state_file: Path | None,
    faults_file: Path | None,
    api_token: str = DEFAULT_API_TOKEN,
) -> None:
    app = build_app(seed, state_file, faults_file, api_token)

    def save() -> None:
        if state_file is not None:
            save_to_file(app.state.sim, state_file)

    config = uvicorn.Config(app, host=host, port=port, lifespan="off", access_log=False)
    _SavingServer(config, save).run()
