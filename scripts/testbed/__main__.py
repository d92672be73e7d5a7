"""``python -m scripts.testbed [pytest arguments]``: what ``./scripts/test`` runs once .venv exists."""

from __future__ import annotations

import os
import sys

from scripts.testbed.flow import run
from scripts.testbed.machine import LocalMachine, SetupError


def say(line: str) -> None:
    print(f"[test] {line}", flush=True)


def main() -> int:
    try:
        env, argv = run(LocalMachine(os.environ), os.environ, sys.argv[1:], say)
    except SetupError as exc:
        print(f"[test] could not prepare the tests' servers: {exc}", file=sys.stderr)
        return 2
    os.execve(argv[0], argv, env)


if __name__ == "__main__":
    sys.exit(main())
