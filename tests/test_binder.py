"""binder/ gives mybinder what the examples need: the package, its notebook extras, redis-server.

How the install check stays real and fast: mybinder (repo2docker) runs
``pip install -r binder/requirements.txt`` from the repository root. We run exactly that, with the
real pip, into a fresh virtualenv that does not see this project's .venv. The only distributions
that venv can see are the dependency closure of binder's requirements (computed from their
metadata, linked in from .venv, so nothing is downloaded except pip's isolated build backend).
The test then checks that pip had nothing to install but restate itself (the closure is complete),
that ``pip check`` is happy, and that every module the example notebooks import can be imported
in that venv -- a module the examples need but binder does not declare fails here.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath

import nbformat
import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

# builds a virtualenv and runs pip: not part of the quick loop
pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parent.parent
BINDER = REPO_ROOT / "binder"
LOCAL_PROJECT = re.compile(r"^(-e\s+)?\.(\[(?P<extras>[^\]]*)\])?$")


def binder_requirements() -> tuple[list[str], list[str]]:
    """(extras of the local project, other requirement strings) listed by binder."""
    extras: list[str] = []
    others: list[str] = []
    for raw in (BINDER / "requirements.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = LOCAL_PROJECT.match(line)
        if match:
            extras += [e.strip() for e in (match["extras"] or "").split(",") if e.strip()]
        else:
            others.append(line)
    return extras, others


def project_requirements(extras: list[str]) -> list[str]:
    """Requirements of this project with ``extras``, self-references (restate[x]) expanded."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    optional = project["optional-dependencies"]
    found = list(project["dependencies"])
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for line in optional[extra]:
            req = Requirement(line)
            if req.name == project["name"]:
                todo.extend(req.extras)
            else:
                found.append(line)
    return found


def applies(req: Requirement, extras: tuple[str, ...]) -> bool:
    if req.marker is None:
        return True
    env = default_environment()
    return any(req.marker.evaluate({**env, "extra": extra}) for extra in ("", *extras))


def dependency_closure(requirements: list[str]) -> dict[str, md.Distribution]:
    """Every installed distribution needed by ``requirements``, by normalized name."""
    closure: dict[str, md.Distribution] = {}
    visited: set[tuple[str, tuple[str, ...]]] = set()
    todo = [(Requirement(line), ()) for line in requirements]
    while todo:
        req, parent_extras = todo.pop()
        if not applies(req, parent_extras):
            continue
        key = (req.name.lower().replace("_", "-"), tuple(sorted(req.extras)))
        if key in visited:
            continue
        visited.add(key)
        try:
            dist = md.distribution(req.name)
        except md.PackageNotFoundError:
            pytest.fail(f"binder needs {req.name}, which is not installed in .venv (dev extras?)")
        closure[key[0]] = dist
        todo.extend((Requirement(sub), tuple(req.extras)) for sub in dist.requires or [])
    return closure


def link_distributions(dists: dict[str, md.Distribution], target: Path) -> None:
    """Symlink each distribution's top-level files and its metadata into ``target``."""
    target.mkdir()
    for dist in dists.values():
        base = Path(str(dist.locate_file("")))
        for top in {PurePosixPath(str(f)).parts[0] for f in dist.files or []}:
            source = base / top
            if top not in ("..", "__pycache__") and source.exists():
                (target / top).unlink(missing_ok=True)
                (target / top).symlink_to(source)


def example_imports() -> set[str]:
    """Top-level modules imported by the code cells of examples/*.ipynb."""
    modules: set[str] = set()
    flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    for path in sorted((REPO_ROOT / "examples").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code":
                continue
            lines = [
                ln for ln in cell.source.splitlines() if not ln.lstrip().startswith(("%", "!"))
            ]
            tree = compile("\n".join(lines), str(path), "exec", flags=flags)
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    modules.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules.add(node.module.split(".")[0])
    return modules


def pip(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


@pytest.fixture(scope="module")
def binder_venv(tmp_path_factory) -> Path:
    """A fresh venv where `pip install -r binder/requirements.txt` ran as mybinder runs it."""
    root = tmp_path_factory.mktemp("binder")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    extras, others = binder_requirements()
    link_distributions(dependency_closure(project_requirements(extras) + others), root / "deps")
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "binder_closure.pth").write_text(f"{root / 'deps'}\n")
    report = root / "report.json"
    installed = pip(
        "--python", str(python), "install", "--report", str(report),
        "-r", "binder/requirements.txt",
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    names = [item["metadata"]["name"] for item in json.loads(report.read_text())["install"]]
    assert names == ["restate"], f"pip had to fetch more than restate: {names}"
    return python


def test_binder_requirements_install_the_package_from_this_repository(binder_venv, tmp_path):
    where = subprocess.run(
        [str(binder_venv), "-c", "import restate, restate_nb; print(restate.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(REPO_ROOT / "restate")


def test_binder_environment_has_no_broken_requirements(binder_venv):
    checked = pip("--python", str(binder_venv), "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_module_the_examples_import_imports_in_the_binder_environment(binder_venv, tmp_path):
    modules = sorted(example_imports() | {"restate", "restate_nb", "ipykernel", "ipywidgets"})
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
    imported = subprocess.run(
        [str(binder_venv), "-c", code, *modules], capture_output=True, text=True, cwd=tmp_path
    )
    assert imported.returncode == 0, f"importing {modules}:\n{imported.stderr}"


def test_binder_installs_redis_server_and_pins_a_supported_python():
    assert "redis-server" in (BINDER / "apt.txt").read_text().split()
    runtime = (BINDER / "runtime.txt").read_text().strip()
    assert re.fullmatch(r"python-3\.(1[1-9])", runtime), runtime
    requires = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert requires["requires-python"] == ">=3.11"
