"""``postpay sim solusvm|whmcs``: run a simulator of an upstream product on loopback.

The credentials the simulators accept come from options or the environment, by default the same
variables postpay's clients authenticate with (POSTPAY_SOLUSVM_API_TOKEN, POSTPAY_WHMCS_IDENTIFIER,
POSTPAY_WHMCS_SECRET, POSTPAY_WHMCS_ACCESSKEY), so a simulator and the postpay beside it agree; unset,
the public demo values apply.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

sim = typer.Typer(help="Run a faithful simulator of SolusVM 2 or WHMCS (tests, demos, staging).", no_args_is_help=True)

HostOption = Annotated[str, typer.Option(help="Interface to listen on.")]
SeedOption = Annotated[int, typer.Option(help="Seed of the fault injector.")]
StateOption = Annotated[
    Path | None, typer.Option("--state", help="JSON file to load the state from and save it to on exit.")
]
FaultsOption = Annotated[
    Path | None, typer.Option("--faults", help="JSON file with fault rules ({seed, rules: [...]}).")
]


@sim.command("solusvm")
def solusvm(
    host: HostOption = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8481,
    seed: SeedOption = 0,
    state: StateOption = None,
    faults: FaultsOption = None,
    api_token: Annotated[
        str,
        typer.Option(
            "--api-token",
            envvar="POSTPAY_SOLUSVM_API_TOKEN",
            show_default=False,
            help="Admin API token (Bearer) the simulator accepts [default: the demo token].",
        ),
    ] = "demo-solusvm-admin-token",
) -> None:
    """Serve the SolusVM 2 API simulator."""
    from simulators.solusvm.cli import serve

    serve(host=host, port=port, seed=seed, state_file=state, faults_file=faults, api_token=api_token)


@sim.command("whmcs")
def whmcs(
    host: HostOption = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8482,
    seed: SeedOption = 0,
    state: StateOption = None,
    faults: FaultsOption = None,
    identifier: Annotated[
        str,
        typer.Option(
            envvar="POSTPAY_WHMCS_IDENTIFIER",
            show_default=False,
            help="API identifier the simulator accepts [default: the demo one].",
        ),
    ] = "demo-identifier",
    secret: Annotated[
        str,
        typer.Option(
            envvar="POSTPAY_WHMCS_SECRET",
            show_default=False,
            help="API secret the simulator accepts [default: the demo one].",
        ),
    ] = "demo-secret",
    accesskey: Annotated[
        str | None,
        typer.Option(
            envvar="POSTPAY_WHMCS_ACCESSKEY", show_default=False, help="API access key, if callers must give one."
        ),
    ] = None,
    admin_password: Annotated[
        str,
        typer.Option(
            envvar="POSTPAY_SIM_WHMCS_ADMIN_PASSWORD",
            show_default=False,
            help="Password of the simulator's admin login (user admin) [default: the demo one].",
        ),
    ] = "demo-admin-password",
) -> None:
    """Serve the WHMCS External API simulator."""
    from simulators.whmcs.cli import serve

    serve(
        host=host,
        port=port,
        seed=seed,
        state_file=state,
        faults_file=faults,
        credentials={
            "identifier": identifier,
            "secret": secret,
            "accesskey": accesskey,
            "admin_password": admin_password,
        },
    )


def register(app: typer.Typer) -> None:
    app.add_typer(sim, name="sim")
