"""Imports flow one way: a lower layer never imports a higher one (read from the sources).

Layers of ``restate`` (each may import its own layer and those listed for it):

    core         errors, missing, paths, tree, serializers, atom, derived
    events       events                                   -> core
    engine       restate._engine.*                        -> core, events
    backends     restate.backends.*                       -> errors, missing, paths, tree,
                                                             serializers (never the engine
                                                             or a controller)
    controllers  controller_base, controller, async_controller and their parts
                 (_runs, _healing, _calling)              -> all of the above
    api          restate/__init__.py                      -> anything in restate

``restate`` never imports ``restate_nb`` and, at import time (module level), none of IPython,
ipywidgets, anywidget, traitlets or redis -- ``redis`` only inside ``restate.backends.redis``,
which nothing imports at module level. In ``restate_nb`` each module has a rank and imports
only modules of a lower rank (the package ``__init__`` is on top, so ``from restate_nb import``
is off limits below it). Imports under ``if TYPE_CHECKING:`` are for annotations only and
are not counted; imports inside functions are (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CORE = {"errors", "missing", "paths", "tree", "serializers", "atom", "derived"}
CONTROLLERS = {"controller_base", "controller", "async_controller", "_runs", "_healing", "_calling"}
BACKEND_MAY_IMPORT = {"errors", "missing", "paths", "tree", "serializers"}
LAYER_IMPORTS = {
    "core": {"core"},
    "events": {"core", "events"},
    "engine": {"core", "events", "engine"},
    "backends": {"backends"},  # plus BACKEND_MAY_IMPORT, checked module by module
    "controllers": {"core", "events", "engine", "backends", "controllers"},
    "api": {"core", "events", "engine", "backends", "controllers", "api"},
}
NOTEBOOK_RANKS = {
    "capture": 0,
    "controller": 0,
    "readonly": 0,
    "backend_switch": 0,
    "tree_records": 0,
    "graph_view": 0,
    "proxy": 1,
    "tracked_cell": 1,
    "binding": 1,
    "tree_protocol": 1,
    "tracked_cells": 2,
    "derive": 2,
    "tree_widget": 2,
    "session": 3,
    "magics": 4,
    "__init__": 5,
}
NOT_AT_IMPORT_TIME = ("restate_nb", "IPython", "ipywidgets", "anywidget", "traitlets", "redis")


@dataclass(frozen=True)
class Import:
    """One import statement's target module, where it is, and whether it runs at import."""

    source: str  # the importing module, dotted
    target: str  # the imported module, dotted and absolute
    line: int
    text: str
    module_level: bool

    def __str__(self) -> str:
        return f"{self.source} (line {self.line}: {self.text!r}) imports {self.target}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def is_module(dotted: str) -> bool:
    base = ROOT.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def is_type_checking_block(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def walk_imports(node: ast.AST, module_level: bool = True) -> Iterator[tuple[ast.AST, bool]]:
    """Import nodes under ``node``, skipping ``if TYPE_CHECKING:`` bodies."""
    for child in ast.iter_child_nodes(node):
        if is_type_checking_block(child):
            assert isinstance(child, ast.If)
            for other in child.orelse:
                yield from walk_imports(other, module_level)
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, module_level
        inner = module_level and not isinstance(
            child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
        )
        yield from walk_imports(child, inner)


def resolve(node: ast.AST, path: Path) -> list[str]:
    """Absolute dotted targets of one import node (``from . import x`` names module ``x``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    assert isinstance(node, ast.ImportFrom)
    if node.level == 0:
        base = node.module or ""
    else:
        package = module_name(path).split(".")
        if not is_package(path):
            package = package[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join(package + ([node.module] if node.module else []))
    targets = [f"{base}.{alias.name}" for alias in node.names if is_module(f"{base}.{alias.name}")]
    return targets or [base]


def imports_of(package: str) -> list[Import]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        source = path.read_text()
        lines = source.splitlines()
        for node, module_level in walk_imports(ast.parse(source, str(path))):
            assert isinstance(node, ast.Import | ast.ImportFrom)
            for target in resolve(node, path):
                text = lines[node.lineno - 1].strip()
                found.append(Import(module_name(path), target, node.lineno, text, module_level))
    return found


def restate_layer(dotted: str) -> str:
    parts = dotted.split(".")
    if parts == ["restate"]:
        return "api"
    name = parts[1]
    if name in CORE:
        return "core"
    if name in ("events", "backends"):
        return name
    if name == "_engine":
        return "engine"
    if name in CONTROLLERS:
        return "controllers"
    raise AssertionError(f"{dotted} has no layer: add it to tests/test_layering.py")


def restate_violations(imports: list[Import]) -> list[str]:
    bad = []
    for imp in imports:
        if not imp.target.startswith("restate.") and imp.target != "restate":
            continue
        source, target = restate_layer(imp.source), restate_layer(imp.target)
        allowed = target in LAYER_IMPORTS[source]
        if source == "backends" and target != "backends":
            allowed = imp.target.split(".")[1] in BACKEND_MAY_IMPORT
        if not allowed:
            bad.append(f"{imp}: layer {source!r} must not import layer {target!r}")
    return bad


def notebook_violations(imports: list[Import]) -> list[str]:
    bad = []
    for imp in imports:
        if imp.target.split(".")[0] != "restate_nb":
            continue
        source = NOTEBOOK_RANKS[imp.source.partition(".")[2] or "__init__"]
        target = NOTEBOOK_RANKS[imp.target.partition(".")[2] or "__init__"]
        if target >= source:
            bad.append(f"{imp}: rank {source} must import only lower ranks, this is {target}")
    return bad


def redis_backend_at_import_time(imp: Import, in_redis_backend: bool) -> bool:
    return (
        imp.module_level
        and imp.target.startswith("restate.backends.redis")
        and not (in_redis_backend)
    )


def import_time_violations(imports: list[Import]) -> list[str]:
    bad = []
    for imp in imports:
        top = imp.target.split(".")[0]
        in_redis_backend = imp.source.startswith("restate.backends.redis")
        if top == "restate_nb":
            bad.append(f"{imp}: restate never imports the notebook layer")
        elif imp.module_level and top in NOT_AT_IMPORT_TIME and not in_redis_backend:
            bad.append(f"{imp} at import time: import it inside the function that needs it")
        elif redis_backend_at_import_time(imp, in_redis_backend):
            bad.append(f"{imp} at import time: it would import redis with restate")
    return bad


def test_every_restate_module_belongs_to_a_layer():
    for path in (ROOT / "restate").rglob("*.py"):
        restate_layer(module_name(path))  # raises naming the module without a layer


def test_every_restate_nb_module_has_a_rank():
    names = {path.stem for path in (ROOT / "restate_nb").glob("*.py")}
    assert names == set(NOTEBOOK_RANKS), "update NOTEBOOK_RANKS in tests/test_layering.py"


def test_no_restate_layer_imports_a_higher_one():
    assert restate_violations(imports_of("restate")) == []


def test_restate_imports_no_notebook_or_redis_package_at_import_time():
    assert import_time_violations(imports_of("restate")) == []


def test_no_restate_nb_module_imports_one_of_its_own_rank_or_higher():
    assert notebook_violations(imports_of("restate_nb")) == []


# -- the checker itself catches what it is for ------------------------------------------------


def planted(tmp_path: Path, relative: str, text: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Parse one planted module as if it lived at ``relative`` in the repository."""
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    for package in ("restate", "restate/_engine", "restate/backends", "restate_nb"):
        (tmp_path / package).mkdir(parents=True, exist_ok=True)
        (tmp_path / package / "__init__.py").touch()
    for name in ("controller", "paths", "events", "_engine/engine", "backends/memory"):
        (tmp_path / "restate" / f"{name}.py").touch()
    for name in NOTEBOOK_RANKS:
        (tmp_path / "restate_nb" / f"{name}.py").touch()
    (tmp_path / relative).write_text(text)
    return relative.split("/")[0]


@pytest.mark.parametrize(
    ("relative", "text", "expected"),
    [
        ("restate/paths.py", "from .events import StateEvent\n", "must not import layer 'events'"),
        (
            "restate/_engine/graph.py",
            "def f():\n    from ..controller import ControllerSync\n",
            "layer 'engine' must not import layer 'controllers'",
        ),
        (
            "restate/backends/sqlite.py",
            "from .._engine.engine import Engine\n",
            "layer 'backends' must not import layer 'engine'",
        ),
        (
            "restate/backends/sqlite.py",
            "from ..events import StateEvent\n",
            "layer 'backends' must not import layer 'events'",
        ),
    ],
)
def test_a_lower_restate_layer_importing_a_higher_one_is_named(
    tmp_path, monkeypatch, relative, text, expected
):
    package = planted(tmp_path, relative, text, monkeypatch)
    (message,) = restate_violations(imports_of(package))
    assert expected in message and relative.removesuffix(".py").replace("/", ".") in message
    assert text.splitlines()[-1].strip() in message  # the offending line itself


@pytest.mark.parametrize("line", ["import IPython", "import redis", "from anywidget import X"])
def test_a_module_level_notebook_or_redis_import_in_restate_is_named(tmp_path, monkeypatch, line):
    package = planted(tmp_path, "restate/tree.py", f"{line}\n", monkeypatch)
    (message,) = import_time_violations(imports_of(package))
    assert "restate.tree" in message and line in message and "at import time" in message


def test_imports_under_type_checking_or_inside_functions_of_optional_packages_pass(
    tmp_path, monkeypatch
):
    text = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from .controller import ControllerSync\n"
        "def load():\n    import redis\n"
    )
    package = planted(tmp_path, "restate/events.py", text, monkeypatch)
    imports = imports_of(package)
    assert restate_violations(imports) == [] and import_time_violations(imports) == []


def test_restate_importing_restate_nb_even_lazily_is_named(tmp_path, monkeypatch):
    text = "def f():\n    import restate_nb\n"
    package = planted(tmp_path, "restate/controller.py", text, monkeypatch)
    (message,) = import_time_violations(imports_of(package))
    assert "never imports the notebook layer" in message


@pytest.mark.parametrize(
    ("relative", "text"),
    [
        ("restate_nb/binding.py", "from restate_nb import get_controller\n"),
        ("restate_nb/capture.py", "from .tracked_cell import TrackedCell\n"),
        ("restate_nb/derive.py", "from .tracked_cells import TrackedCells\n"),
    ],
)
def test_a_lower_restate_nb_module_importing_a_higher_or_equal_one_is_named(
    tmp_path, monkeypatch, relative, text
):
    package = planted(tmp_path, relative, text, monkeypatch)
    (message,) = notebook_violations(imports_of(package))
    assert relative.removesuffix(".py").replace("/", ".") in message and text.strip() in message
