"""The README test command (`scripts/test`) and `.ci/run`: setup, lint, pytest, exit codes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
THIS_FILE = "tests/test_scripts.py"


def run(*command: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    return subprocess.run(
        list(command), capture_output=True, text=True, cwd=REPO_ROOT, timeout=600, env=env
    )


def test_both_readme_commands_and_ci_run_are_executable_bash_scripts():
    for name in ("scripts/test", "scripts/run", ".ci/run"):
        path = REPO_ROOT / name
        assert os.access(path, os.X_OK), f"{name} is not executable"
        assert path.read_text().startswith("#!/usr/bin/env bash\n"), name


def test_setup_code_is_shared_by_both_commands_not_copied():
    for name in ("scripts/test", "scripts/run"):
        text = (REPO_ROOT / name).read_text()
        assert 'source "$(dirname "${BASH_SOURCE[0]}")/_setup.sh"' in text
        assert "setup_all" in text
        assert "apt-get" not in text and "pip install" not in text


def test_ci_run_calls_the_test_command_in_ci_mode_with_extra_arguments_passed_on():
    result = run(".ci/run", THIS_FILE, "-k", "executable_bash_scripts")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    # CI=true asks pytest for the slowest durations; the phases are timed.
    assert "slowest" in result.stdout
    for phase in ("system packages", "python environment", "ruff", "pytest", "total"):
        assert f"== {phase}: " in result.stdout, phase


def test_test_command_fails_clearly_when_pytest_collects_nothing():
    result = run("scripts/test", THIS_FILE, "-k", "no_test_has_this_name")

    assert result.returncode == 1
    assert "collected no tests" in result.stderr
    assert "FAILED (exit 1)" in result.stderr


def test_test_command_returns_the_failure_of_a_failing_test(tmp_path):
    failing = tmp_path / "test_probe.py"
    failing.write_text("def test_probe_fails():\n    assert 1 == 2\n")

    result = run("scripts/test", str(failing))

    assert result.returncode == 1
    assert "1 failed" in result.stdout
