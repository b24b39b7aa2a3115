"""The opt-in compiled build (``RESTATE_COMPILE=1 pip install .``, docs/development.md): it
installs extension modules for the pure hot modules, and the core's tests pass against them.

The build runs in a fresh venv as the docs say to run it (pip, build isolation: setuptools
and mypy come from the package index). The tests then run in that venv, whose compiled
restate comes first on the path; pytest, hypothesis and the rest come from this checkout's
.venv through a ``.pth`` line (a path a ``.pth`` adds is not a site directory, so the
editable restate of .venv stays out of it).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.test_packaging import INSTALL_DEADLINE, fresh_clone, fresh_venv, shell

ROOT = Path(__file__).resolve().parent.parent

# the core's suites, run against the compiled modules
SUBSET = [
    "tests/test_state.py",
    "tests/test_events.py",
    "tests/test_derive.py",
    "tests/test_batch_errors_threads.py",
    "tests/test_batch_siblings.py",
    "tests/test_batch_guards.py",
    "tests/test_batch_merge.py",
    "tests/test_registration.py",
    "tests/test_scheduler.py",
    "tests/test_graph_order.py",
    "tests/test_audience.py",
    "tests/test_direct_path.py",
    "tests/test_read_path.py",
    "tests/test_tree_model.py",
    "tests/test_paths.py",
    "tests/test_api_parity.py",
    "tests/backends/test_bad_values.py",
    "tests/backends/test_interrupts.py",
]

# tests that look inside the engine in ways compiled classes and modules do not allow; what
# each checks is checked by the pure build's run
NOT_COMPILED = {
    "tests/test_audience.py::test_a_write_nobody_hears_is_not_planned": "patches a method",
    "tests/test_direct_path.py::test_a_path_a_derivation_reads_goes_through_the_engine":
        "patches a method",
    "tests/test_direct_path.py::test_a_write_heard_by_one_plain_subscriber_takes_the_direct_"
    "path": "patches a method",
    "tests/test_direct_path.py::test_the_direct_path_and_the_engine_path_give_the_same_states_"
    "and_events": "subclasses Audience",
    "tests/test_direct_path.py::test_the_module_documents_the_switch":
        "reads a module docstring (compiled modules have none)",
}  # fmt: skip


def site_packages(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return Path(out.stdout.strip())


@pytest.mark.slow
@pytest.mark.timeout(2 * INSTALL_DEADLINE)
def test_the_compiled_build_installs_extension_modules_and_passes_the_core_tests(
    tmp_path: Path,
) -> None:
    clone = fresh_clone(tmp_path)
    python = fresh_venv(tmp_path / "venv")

    installed = shell("RESTATE_COMPILE=1 pip install --no-deps .", clone, python)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]

    (site_packages(python) / "_dev_tools.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp_path / "run"  # the tests, away from any restate source tree
    shutil.copytree(ROOT / "tests", work / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", work / "pyproject.toml")  # markers, timeout
    where = subprocess.run(
        [str(python), "-c", "import restate._engine.engine as e, restate; print(e.__file__)"],
        cwd=work, capture_output=True, text=True,
    )  # fmt: skip
    assert where.returncode == 0, where.stderr
    assert where.stdout.strip().endswith(".so"), where.stdout
    assert str(tmp_path / "venv") in where.stdout

    deselect = [arg for test in NOT_COMPILED for arg in ("--deselect", test)]
    ran = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow",
         *deselect, *SUBSET],
        cwd=work, capture_output=True, text=True, timeout=INSTALL_DEADLINE,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout[-6000:] + ran.stderr[-3000:]
    assert " passed" in ran.stdout and "error" not in ran.stdout.splitlines()[-1]


def test_only_restate_compile_asks_for_the_compiled_build_and_never_for_an_editable_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sys.path.insert(0, str(ROOT / "build_hook"))
    try:
        import restate_build
    finally:
        sys.path.remove(str(ROOT / "build_hook"))
    assert restate_build.wants_compile({}) is False
    assert restate_build.wants_compile({"RESTATE_COMPILE": "0"}) is False
    assert restate_build.wants_compile({"RESTATE_COMPILE": "1"}) is True
    with pytest.raises(SystemExit, match="RESTATE_COMPILE='maybe'"):
        restate_build.wants_compile({"RESTATE_COMPILE": "maybe"})
    never = ("filesystem", "sqlite", "redis", "controller", "backends/")
    modules = restate_build.compiled_modules()
    assert "restate/_engine/engine.py" in modules and "restate/paths.py" in modules
    assert not [m for m in modules if any(word in m for word in never)]
    assert all((ROOT / m).is_file() for m in modules)
    monkeypatch.setenv("RESTATE_COMPILE", "1")
    with pytest.raises(SystemExit, match="an editable install"):
        restate_build.get_requires_for_build_editable()
