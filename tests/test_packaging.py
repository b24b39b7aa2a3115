"""The core package stays dependency-free and declares its Python honestly."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

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
