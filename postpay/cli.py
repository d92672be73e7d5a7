"""The ``postpay`` command.

Each module in ``postpay.commands`` adds its own sub-commands through ``register(app)``, so a new
command is a new file, not an edit here.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

import postpay.commands
from shared.errors import ConfigurationError

app = typer.Typer(
    name="postpay",
    help="Event-driven post-pay billing for SolusVM 2, invoiced through WHMCS.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _register_commands() -> None:
    for module_info in sorted(pkgutil.iter_modules(postpay.commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"postpay.commands.{module_info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_commands()


def main() -> None:
    try:
        app()
    except ConfigurationError as error:
        # A setting to fix, not a bug: one clear line naming it, no traceback, and a failing exit.
        print(f"postpay: configuration error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
