"""The README's test command is the one CI runs and it exists; the pieces of the test command that touch
a server's configuration or the terminal behave (scripts/testbed)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from scripts.testbed import machine
from scripts.testbed.decisions import masked
from scripts.testbed.machine import TRUST_LINE, with_trust_line

ROOT = Path(__file__).resolve().parents[2]
HBA = "# comment\nlocal all postgres peer\nhost all all 127.0.0.1/32 scram-sha-256\n"


def readme_test_command(readme: str) -> str:
    block = re.search(r"<!-- test-command -->\n```\n(.*?)\n```\n<!-- /test-command -->", readme, re.S)
    assert block, "README.md has no test-command block"
    return block.group(1)


def test_the_readme_test_command_is_the_executable_script_ci_runs() -> None:
    command = readme_test_command((ROOT / "README.md").read_text())
    assert command == "./scripts/test"
    assert os.access(ROOT / command, os.X_OK)
    assert f'test_command="{command}"' in (ROOT / ".ci" / "run").read_text()


def ci_copy(tmp_path: Path, readme_command: str) -> Path:
    (tmp_path / ".ci").mkdir()
    shutil.copy(ROOT / ".ci" / "run", tmp_path / ".ci" / "run")
    (tmp_path / "scripts").mkdir()
    fake = tmp_path / "scripts" / "test"
    fake.write_text('#!/bin/sh\necho "ran with: $*"\n')
    fake.chmod(0o755)
    (tmp_path / "README.md").write_text(
        f"# x\n<!-- test-command -->\n```\n{readme_command}\n```\n<!-- /test-command -->\n"
    )
    return tmp_path / ".ci" / "run"


def test_ci_refuses_to_run_when_the_readme_command_drifts(tmp_path: Path) -> None:
    result = subprocess.run([ci_copy(tmp_path, "python3 -m pytest")], capture_output=True, text=True)
    assert result.returncode == 2
    assert "differs from the one .ci/run runs" in result.stderr
    assert "ran with" not in result.stdout


def test_ci_runs_the_readme_command_passing_arguments_through(tmp_path: Path) -> None:
    result = subprocess.run([ci_copy(tmp_path, "./scripts/test"), "tests/unit"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "ran with: tests/unit" in result.stdout


def test_the_trust_line_goes_first_once() -> None:
    changed = with_trust_line(HBA)
    assert changed.splitlines()[0] == TRUST_LINE
    assert changed.endswith(HBA)
    assert with_trust_line(changed) == changed


def test_a_line_left_by_the_old_ci_script_is_not_doubled() -> None:
    old = "host all all 127.0.0.1/32 trust # postpay-ci\n" + HBA
    assert with_trust_line(old) == old


def test_urls_on_the_terminal_hide_their_password() -> None:
    assert masked("amqp://me:s3cret@rabbit.example:5672/vh") == "amqp://me:***@rabbit.example:5672/vh"
    assert masked("postgresql://postgres@127.0.0.1:5432/test") == "postgresql://postgres@127.0.0.1:5432/test"


def fake_bin(tmp_path: Path, programs: dict[str, str]) -> dict[str, str]:
    """PATH with these programs first; each logs its arguments to calls.log, then runs its body."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in programs.items():
        program = bin_dir / name
        program.write_text(f'#!/bin/sh\necho "{name} $*" >> "{tmp_path}/calls.log"\n{body}\n')
        program.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def entry_copy(tmp_path: Path) -> Path:
    (tmp_path / "repo" / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "test", tmp_path / "repo" / "scripts" / "test")
    return tmp_path / "repo" / "scripts" / "test"


# A python3 that cannot make a virtual environment (Debian without python3-venv): its import check fails,
# and `-m venv` stops the run after the branch under test.
PYTHON_WITHOUT_VENV = 'case "$1" in -c) exit 1;; -m) exit 3;; esac'


def test_as_root_the_entry_installs_python3_venv_before_making_the_environment(tmp_path: Path) -> None:
    env = fake_bin(tmp_path, {"python3": PYTHON_WITHOUT_VENV, "id": "echo 0", "apt-get": "exit 0"})
    result = subprocess.run([entry_copy(tmp_path)], env=env, capture_output=True, text=True)
    calls = (tmp_path / "calls.log").read_text().splitlines()
    assert any(c.startswith("apt-get install") and c.endswith("python3-venv") for c in calls), calls
    assert calls[-1] == "python3 -m venv .venv"  # made after the install
    assert result.returncode == 3
    assert "installing python3-venv" in result.stdout


def test_without_root_the_entry_names_python3_venv_and_installs_nothing(tmp_path: Path) -> None:
    env = fake_bin(tmp_path, {"python3": PYTHON_WITHOUT_VENV, "id": "echo 1000", "apt-get": "exit 0"})
    result = subprocess.run([entry_copy(tmp_path)], env=env, capture_output=True, text=True)
    assert result.returncode == 2
    assert "install python3-venv" in result.stderr
    assert not any(c.startswith("apt-get") for c in (tmp_path / "calls.log").read_text().splitlines())


def test_packages_install_with_service_starts_held_and_the_hold_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = tmp_path / "policy-rc.d"
    monkeypatch.setattr(machine, "POLICY_RC", policy)
    with machine._services_held():
        assert subprocess.run([policy]).returncode == 101  # Debian's "do not start" answer
    assert not policy.exists()


def test_a_policy_rc_the_machine_already_has_is_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    policy = tmp_path / "policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 0\n")
    monkeypatch.setattr(machine, "POLICY_RC", policy)
    with machine._services_held():
        pass
    assert policy.read_text() == "#!/bin/sh\nexit 0\n"
