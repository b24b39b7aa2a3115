"""The core package stays dependency-free and declares its Python honestly."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_importing_restate_imports_no_optional_dependency() -> None:
    code = (
        "import sys, restate\n"
        "from restate import ControllerSync, ControllerAsync, SQLiteBackend, "
        "FileSystemSyncBackend, HybridSyncBackend, CachingSyncBackend\n"
        "bad = [m for m in ('IPython', 'ipywidgets', 'anywidget', 'traitlets', 'redis') "
        "if m in sys.modules]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_core_has_no_runtime_dependencies_and_requires_python_3_11() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["dependencies"] == []
    assert project["requires-python"] == ">=3.11"


def test_restate_sources_never_import_the_notebook_stack() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "restate").rglob("*.py")
        for line in path.read_text().splitlines()
        if line.lstrip().startswith(("import ", "from "))
        and any(name in line for name in ("IPython", "ipywidgets", "anywidget", "restate_nb"))
    ]
    assert offenders == []


# -- installing as a newcomer does: a fresh clone, a fresh venv, pip only --------------------

INSTALL_DEADLINE = 900  # seconds for one pip install (it may download the notebook stack)


def fresh_clone(tmp_path: Path) -> Path:
    """A git repository holding exactly this checkout's files (committed or not, ignored files
    left out), cloned as a user would clone it."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    source = tmp_path / "source"
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "snapshot"]):
        subprocess.run([*git, *command], cwd=source, check=True, capture_output=True)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(source), str(clone)], check=True)
    return clone


def fresh_venv(where: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=300)
    return where / "bin" / "python"


def shell(command: str, cwd: Path, venv_python: Path) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in bash as a user would, with the venv activated (its bin first)."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = f"{venv_python.parent}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv_python.parent.parent)
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=INSTALL_DEADLINE,
    )  # fmt: skip


def imports_this_version(venv_python: Path, cwd: Path) -> str:
    code = (
        "import restate, restate_nb, IPython, ipywidgets, anywidget\n"
        "from restate_nb import get_controller\n"
        "print(restate.__version__, restate.__file__)"
    )
    done = subprocess.run([str(venv_python), "-c", code], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
def test_the_readme_install_line_works_verbatim_in_a_fresh_clone_and_venv(tmp_path):
    clone = fresh_clone(tmp_path)
    python = fresh_venv(tmp_path / "venv")

    installed = shell("pip install -e '.[notebook]'", clone, python)

    assert installed.returncode == 0, installed.stdout + installed.stderr
    version, where = imports_this_version(python, tmp_path).split()
    assert version == "0.12.0"
    assert Path(where).is_relative_to(clone)  # editable: the clone's sources


@pytest.mark.slow
def test_installing_from_the_repository_url_works_in_a_fresh_venv(tmp_path):
    clone = fresh_clone(tmp_path)
    python = fresh_venv(tmp_path / "venv")

    # "localhost": the pip that Python 3.11's venv bundles (23.x) rejects git+file:///path
    # (no host) as an invalid requirement; a repository's https URL has a host anyway
    url = f"git+file://localhost{clone}"
    installed = shell(f'pip install "restate[notebook] @ {url}"', tmp_path, python)

    assert installed.returncode == 0, installed.stdout + installed.stderr
    version, where = imports_this_version(python, tmp_path).split()
    assert version == "0.12.0" and "site-packages" in where


@pytest.mark.slow
def test_the_wheel_ships_both_py_typed_markers_the_license_and_the_widget_assets(tmp_path):
    clone = fresh_clone(tmp_path)
    python = fresh_venv(tmp_path / "venv")

    built = shell(f"pip wheel --no-deps -w {tmp_path / 'dist'} .", clone, python)

    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (tmp_path / "dist").glob("restate-0.12.0-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"restate/py.typed", "restate_nb/py.typed"} <= names
    assert {"restate_nb/static/tree.js", "restate_nb/static/tree.css"} <= names
    assert "restate-0.12.0.dist-info/licenses/LICENSE" in names


def test_the_version_is_0_12_and_the_license_file_is_declared():
    import restate

    assert restate.__version__ == "0.12.0"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert (ROOT / "restate" / "py.typed").is_file() and (
        ROOT / "restate_nb" / "py.typed"
    ).is_file()
