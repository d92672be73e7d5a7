"""Rewrite the generated parts of the docs after a change to settings, events or subscriptions.

    .venv/bin/python -m scripts.regen_docs

Tests (tests/unit/test_deploy_files.py) fail while any of these is stale; this is the one way to fix
them all: docs/configuration.md, the README's settings table, docs/security.md's producers table and
deploy/k8s/rabbitmq-access.yaml.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from postpay.commands.config import reference_markdown
from postpay.commands.events import producers_table

ROOT = Path(__file__).resolve().parents[1]


def replace_block(path: Path, marker: str, body: str) -> None:
    text = path.read_text()
    opening, closing = f"<!-- {marker} -->\n", f"\n<!-- /{marker} -->"
    head, rest = text.split(opening, 1)
    _, tail = rest.split(closing, 1)
    path.write_text(head + opening + body + closing + tail)


def main() -> None:
    reference = reference_markdown()
    (ROOT / "docs" / "configuration.md").write_text(reference)
    table = "\n".join(line for line in reference.splitlines() if line.startswith("|"))
    replace_block(ROOT / "README.md", "configuration-reference", table)
    replace_block(ROOT / "docs" / "security.md", "producers", producers_table())
    postpay = Path(sys.executable).with_name("postpay")
    manifest = subprocess.run([str(postpay), "broker", "kubernetes"], check=True, capture_output=True, text=True)
    (ROOT / "deploy" / "k8s" / "rabbitmq-access.yaml").write_text(manifest.stdout)


if __name__ == "__main__":
    main()
