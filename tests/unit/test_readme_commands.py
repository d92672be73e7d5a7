"""The README's command table names every command `postpay --help` offers, so a new one cannot hide."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from postpay.cli import app

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_command_table_lists_every_command() -> None:
    group = typer.main.get_group(app)
    offered = set(group.commands)
    table = README.read_text().split("| command | what it does |", 1)[1].split("\n\n", 1)[0]
    listed = set(re.findall(r"`postpay ([a-z-]+)", table))
    assert offered - listed == set(), "add these to the README's command table"
    assert listed - offered == set(), "the README lists commands postpay does not have"
