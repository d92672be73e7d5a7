"""The tree is ruff-clean and ruff-formatted (settings: pyproject.toml's [tool.ruff]), so CI fails on a
lint error or an unformatted file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_ruff_finds_nothing_to_report() -> None:
    result = ruff("check", "--no-cache", ".")
    assert result.returncode == 0, f"ruff check (fix: ruff check --fix .):\n{result.stdout}{result.stderr}"


def test_every_file_is_formatted() -> None:
    result = ruff("format", "--no-cache", "--check", ".")
    assert result.returncode == 0, f"unformatted (fix: ruff format .):\n{result.stdout}{result.stderr}"


def test_the_check_would_catch_an_unformatted_file(tmp_path: Path) -> None:
    sloppy = tmp_path / "sloppy.py"
    sloppy.write_text("x = {  'a':1 }\n")
    result = ruff("format", "--no-cache", "--check", "--config", str(ROOT / "pyproject.toml"), str(sloppy))
    assert result.returncode == 1 and "sloppy.py" in result.stdout
