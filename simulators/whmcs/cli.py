"""``postpay sim whmcs``: serve the simulator with uvicorn, keeping its state in a JSON file."""

from __future__ import annotations

import json
from pathlib import Path

import uvicorn

from simulators.faults import FaultConfig, FaultInjector
from simulators.whmcs.app import create_app
from simulators.whmcs.persistence import load_file, save_file
from simulators.whmcs.state import WhmcsState


def serve(
    host: str = "127.0.0.1",
    port: int = 8482,
    seed: int = 0,
    state_file: Path | None = None,
    faults_file: Path | None = None,
) -> None:
    """Run until interrupted; load ``state_file`` first if it exists and save it on the way out."""
    state = WhmcsState()
    if state_file is not None and state_file.exists():
        load_file(state, state_file)
    faults = FaultInjector(seed)
    if faults_file is not None:
        config = FaultConfig.model_validate(json.loads(faults_file.read_text(encoding="utf-8")))
        faults.configure(config.model_copy(update={"seed": seed}) if seed else config)
    app = create_app(state, seed=seed, faults=faults)
    app.state.state_file = state_file
    try:
        uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
    finally:
        if state_file is not None:
            save_file(state, state_file)
