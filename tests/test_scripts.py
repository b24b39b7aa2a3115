"""The README test command (`scripts/test`) and `.ci/run`: setup, lint, pytest, exit codes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

# runs scripts/test and .ci/run themselves: not part of the quick loop
pytestmark = pytest.mark.slow

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
        code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        assert "apt-get install" not in code and "pip install" not in code


def test_ci_run_calls_the_test_command_in_ci_mode_with_extra_arguments_passed_on():
    result = run(".ci/run", THIS_FILE, "-k", "executable_bash_scripts")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    # CI=true asks pytest for the slowest durations; the phases are timed.
    assert "slowest" in result.stdout
    for phase in ("system packages", "python environment", "ruff", "mypy", "pytest", "total"):
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


def fake_bin(tmp_path: Path, uid: int, extra: dict[str, str], apt: bool = True) -> Path:
    """A PATH directory with a fake `id`, `apt-get` (logs its calls) and what `extra` adds."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    scripts = {"id": f"echo {uid}", "cc": "exit 0", **extra}  # (a compiler: see below)
    if apt:
        scripts["apt-get"] = f'echo "apt-get $* [DEBIAN_FRONTEND=$DEBIAN_FRONTEND]" >> {log}'
    for name, body in scripts.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    (bin_dir / "env").symlink_to("/usr/bin/env")
    return bin_dir


def setup_step(bin_dir: Path, call: str, os_id: str = "debian") -> subprocess.CompletedProcess[str]:
    """Source scripts/_setup.sh and run ``call`` with only ``bin_dir`` on PATH, on ``os_id``."""
    release = bin_dir.parent / "os-release"
    release.write_text(f"ID={os_id}\n")
    return subprocess.run(
        ["/bin/bash", "-c", f"source scripts/_setup.sh; {call}"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={"PATH": str(bin_dir), "RESTATE_OS_RELEASE": str(release)},
        timeout=60,
    )


def ensure_system_packages(
    bin_dir: Path, role: str = "test", os_id: str = "debian"
) -> subprocess.CompletedProcess[str]:
    """Run the apt step of ``role`` (run or test) with only ``bin_dir`` on PATH."""
    return setup_step(bin_dir, f'ensure_system_packages {role} "{sys.executable}"', os_id)


def test_missing_system_packages_are_installed_with_apt_get_as_root(tmp_path):
    result = ensure_system_packages(fake_bin(tmp_path, 0, {}))

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "calls.log").read_text().splitlines() == [
        "apt-get update -qq [DEBIAN_FRONTEND=]",
        "apt-get install -y -qq --no-install-recommends redis-server chromium"
        " [DEBIAN_FRONTEND=noninteractive]",
    ]


def test_present_system_packages_skip_apt_get_entirely(tmp_path):
    present = {"redis-server": "exit 0", "chromium": "exit 0"}
    result = ensure_system_packages(fake_bin(tmp_path, 0, present))

    assert result.returncode == 0, result.stderr
    assert "system packages present" in result.stdout
    assert not (tmp_path / "calls.log").exists()


def test_a_non_root_user_installs_through_sudo(tmp_path):
    sudo = f'echo "sudo $1" >> {tmp_path / "calls.log"}; exec "$@"'
    result = ensure_system_packages(fake_bin(tmp_path, 1000, {"sudo": sudo}))

    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "calls.log").read_text().splitlines()
    assert calls[0] == "sudo apt-get" and calls[2] == "sudo env"
    assert "install -y -qq --no-install-recommends redis-server chromium" in calls[3]


def test_a_non_root_user_without_sudo_gets_a_clear_error_and_nothing_runs(tmp_path):
    result = ensure_system_packages(fake_bin(tmp_path, 1000, {"redis-server": "exit 0"}))

    assert result.returncode == 1
    assert "need root (or sudo) to install system packages" in result.stderr
    assert "chromium" in result.stdout  # what it wanted to install
    assert not (tmp_path / "calls.log").exists()


def test_the_test_command_installs_a_c_compiler_when_none_is_there(tmp_path):
    # tests/test_compiled_build.py compiles the opt-in mypyc core: a fresh Debian has no cc
    bin_dir = fake_bin(tmp_path, 0, {"redis-server": "exit 0", "chromium": "exit 0"})
    (bin_dir / "cc").unlink()
    result = ensure_system_packages(bin_dir)

    assert result.returncode == 0, result.stderr
    assert (
        (tmp_path / "calls.log")
        .read_text()
        .splitlines()[1]
        .endswith("--no-install-recommends build-essential [DEBIAN_FRONTEND=noninteractive]")
    )
    (tmp_path / "run").mkdir()
    run_bin = fake_bin(tmp_path / "run", 0, {"redis-server": "exit 0"})
    (run_bin / "cc").unlink()
    run = ensure_system_packages(run_bin, role="run")  # the notebooks compile nothing
    assert run.returncode == 0 and "system packages present" in run.stdout, run.stderr


def test_the_run_command_needs_only_redis_server_not_chromium(tmp_path):
    result = ensure_system_packages(fake_bin(tmp_path, 0, {}), role="run")

    assert result.returncode == 0, result.stderr
    assert (
        (tmp_path / "calls.log")
        .read_text()
        .splitlines()[1]
        .endswith("--no-install-recommends redis-server [DEBIAN_FRONTEND=noninteractive]")
    )


def test_without_apt_get_the_run_command_says_what_to_install_and_goes_on(tmp_path):
    result = ensure_system_packages(fake_bin(tmp_path, 1000, {}, apt=False), role="run")

    assert result.returncode == 0, result.stderr
    assert "missing redis-server and apt-get is not available" in result.stderr
    assert "example 05" in result.stderr


def test_without_apt_get_the_test_command_stops_and_says_what_to_install(tmp_path):
    result = ensure_system_packages(fake_bin(tmp_path, 1000, {}, apt=False), os_id="darwin")

    assert result.returncode == 1
    assert "missing redis-server chromium and apt-get is not available" in result.stderr
    assert "brew install redis" in result.stderr


def test_without_apt_get_present_programs_are_enough(tmp_path):
    present = {"redis-server": "exit 0", "chromium": "exit 0"}
    result = ensure_system_packages(fake_bin(tmp_path, 1000, present, apt=False))

    assert result.returncode == 0, result.stderr
    assert "system packages present (redis-server chromium)" in result.stdout


def test_on_ubuntu_chromium_is_not_asked_of_apt_get_which_has_only_a_snap(tmp_path):
    result = ensure_system_packages(fake_bin(tmp_path, 0, {}), os_id="ubuntu")

    assert result.returncode == 0, result.stderr
    assert "snap install chromium" in result.stdout
    install = (tmp_path / "calls.log").read_text().splitlines()[1]
    assert "redis-server" in install and "chromium" not in install


@pytest.mark.parametrize(("os_id", "hint"), [("ubuntu", "apt-get install python3.11"),
                                             ("fedora", "python.org")])  # fmt: skip
def test_a_python_older_than_3_11_is_refused_with_what_to_do(tmp_path, os_id, hint):
    old_python = 'case "$*" in *--version*) echo "Python 3.10.12";; *) exit 1;; esac'
    result = setup_step(fake_bin(tmp_path, 0, {"python3": old_python}), "find_python", os_id)

    assert result.returncode == 1
    assert "Python >= 3.11 not found" in result.stderr and "Python 3.10.12" in result.stderr
    assert hint in result.stderr and "RESTATE_PYTHON" in result.stderr


def test_restate_python_picks_the_interpreter(tmp_path):
    call = "find_python"
    result = subprocess.run(
        ["/bin/bash", "-c", f"source scripts/_setup.sh; {call}"],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=60,
        env={**os.environ, "RESTATE_PYTHON": sys.executable},
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == sys.executable


def test_test_command_help_documents_the_quick_loop_and_every_marker_without_setting_up():
    result = run("scripts/test", "--help")

    assert result.returncode == 0, result.stderr
    assert "== system packages" not in result.stdout
    for word in ("--quick", "slow", "browser", "redis", "perf", "exit code 5"):
        assert word in result.stdout, word


# -- .pre-commit-config.yaml runs what scripts/test lints ------------------------------------


def bash_array(name: str) -> list[str]:
    """The words of ``NAME=(...)`` in scripts/test."""
    text = (REPO_ROOT / "scripts" / "test").read_text()
    match = re.search(rf"^{name}=\(([^)]*)\)", text, re.M)
    assert match, f"{name} not found in scripts/test"
    return match[1].split()


def test_pre_commit_hooks_lint_the_paths_scripts_test_lints_with_the_projects_venv():
    hooks = {
        hook["id"]: hook
        for repo in yaml.safe_load((REPO_ROOT / ".pre-commit-config.yaml").read_text())["repos"]
        for hook in repo["hooks"]
    }
    lint_paths = "|".join(bash_array("LINT_PATHS"))
    assert hooks["ruff-check"]["entry"] == ".venv/bin/ruff check"
    assert hooks["ruff-format"]["entry"] == ".venv/bin/ruff format --check"
    for name in ("ruff-check", "ruff-format"):
        assert hooks[name]["files"] == f"^({lint_paths})/", name
    assert hooks["mypy"]["entry"] == ".venv/bin/mypy" and not hooks["mypy"]["pass_filenames"]
    mypy_files = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert mypy_files["files"] == bash_array("TYPED_PATHS")


@pytest.mark.parametrize("planted", [None, "unused_import", "unformatted", "untyped"])
def test_pre_commit_passes_a_clean_tree_and_fails_a_planted_lint_or_type_error(tmp_path, planted):
    from tests.test_packaging import fresh_clone

    clone = fresh_clone(tmp_path)
    (clone / ".venv").symlink_to(REPO_ROOT / ".venv")
    target = clone / "restate" / "atom.py"
    target.write_text(target.read_text() + PLANTED.get(planted, ""))
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")}

    result = subprocess.run(
        [str(REPO_ROOT / ".venv" / "bin" / "pre-commit"), "run", "--all-files"],
        cwd=clone, capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip

    if planted is None:
        assert result.returncode == 0, result.stdout + result.stderr
    else:
        assert result.returncode == 1, result.stdout
        assert "restate/atom.py" in result.stdout and "Failed" in result.stdout


PLANTED = {
    "unused_import": "\nimport os\n",
    "unformatted": "\nx   =  1\n",
    "untyped": "\n\ndef untyped(a):\n    return a\n",
}
