"""``postpay sim solusvm|whmcs``: run a simulator of an upstream product on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

sim = typer.Typer(help="Run a faithful simulator of SolusVM 2 or WHMCS (tests, demos, staging).", no_args_is_help=True)

HostOption = Annotated[str, typer.Option(help="Interface to listen on.")]
SeedOption = Annotated[int, typer.Option(help="Seed of the fault injector.")]
StateOption = Annotated[
    Optional[Path], typer.Option("--state", help="JSON file to load the state from and save it to on exit.")
]
FaultsOption = Annotated[
    Optional[Path], typer.Option("--faults", help="JSON file with fault rules ({seed, rules: [...]}).")
]


@sim.command("solusvm")
def solusvm(
    host: HostOption = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8481,
    seed: SeedOption = 0,
    state: StateOption = None,
    faults: FaultsOption = None,
) -> None:
    """Serve the SolusVM 2 API simulator."""
    from simulators.solusvm.cli import serve

    serve(host=host, port=port, seed=seed, state_file=state, faults_file=faults)


@sim.command("whmcs")
def whmcs(
    host: HostOption = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8482,
    seed: SeedOption = 0,
    state: StateOption = None,
    faults: FaultsOption = None,
) -> None:
    """Serve the WHMCS External API simulator."""
    from simulators.whmcs.cli import serve

    serve(host=host, port=port, seed=seed, state_file=state, faults_file=faults)


def register(app: typer.Typer) -> None:
    app.add_typer(sim, name="sim")
