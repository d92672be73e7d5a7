"""The import contracts of pyproject.toml ([tool.importlinter]) hold: no service imports another, shared
imports no service, postpay/ reaches a service only through its public.py, the simulators import nothing
of the product. CI runs the pytest suite, so a broken contract fails CI here.

The second test checks the checker: the same tool, on a contract the code is known to break, must say
broken (so a tool that analysed nothing, say a package it could not see, cannot pass for a clean one).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _lint_imports() -> str:
    beside = Path(sys.executable).parent / "lint-imports"
    found = str(beside) if beside.exists() else shutil.which("lint-imports")
    assert found, "lint-imports is not installed: pip install -e '.[test]' (import-linter is a test extra)"
    return found


def _run(*config: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_lint_imports(), "--no-cache", "--no-logo", *config], cwd=ROOT, capture_output=True, text=True, timeout=240
    )


def test_every_import_contract_is_kept() -> None:
    result = _run()
    assert result.returncode == 0, f"an import contract is broken:\n{result.stdout}\n{result.stderr}"
    assert "0 broken" in result.stdout and "4 kept" in result.stdout, result.stdout


def test_a_broken_contract_fails_the_check(tmp_path: Path) -> None:
    # Both are broken on purpose: every service runs handlers from shared.bus (a package the checker
    # must see into), and postpay's composition root imports the kernel.
    config = tmp_path / "broken.toml"
    config.write_text("""
[tool.importlinter]
root_packages = ["shared", "services", "postpay", "simulators"]

[[tool.importlinter.contracts]]
name = "services never import the bus"
type = "forbidden"
source_modules = ["services"]
forbidden_modules = ["shared.bus"]

[[tool.importlinter.contracts]]
name = "postpay never imports the kernel"
type = "forbidden"
source_modules = ["postpay"]
forbidden_modules = ["shared"]
""")
    result = _run(str(config))
    assert result.returncode != 0, result.stdout
    assert "2 broken" in result.stdout, result.stdout
    assert "services never import the bus BROKEN" in result.stdout, result.stdout
