"""The build backend: setuptools', plus mypy among the build requirements when the compiled
build is asked for (``RESTATE_COMPILE=1``; see setup.py and docs/development.md).

Only pure modules are listed: no I/O (files, SQLite, Redis), nothing that looks at frames
(the controllers find a batch's ``with`` statement on the stack), nothing users subclass.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403  (the rest of PEP 517/660, unchanged)

#: the compiled modules besides the engine's, relative to the repository root
PURE = ["restate/missing.py", "restate/paths.py", "restate/tree.py", "restate/events.py"]
ROOT = Path(__file__).resolve().parent.parent


def compiled_modules() -> list[str]:
    """Every module of the engine (restate/_engine, its package marker aside) and ``PURE``."""
    engine = sorted(
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "restate" / "_engine").glob("*.py")
        if path.name != "__init__.py"
    )
    return [*PURE, *engine]


MYPY = "mypy>=1.10"


def wants_compile(environ: Mapping[str, str]) -> bool:
    """Whether ``RESTATE_COMPILE`` asks for the compiled build (``1``, ``true``, ``yes``)."""
    value = environ.get("RESTATE_COMPILE", "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise SystemExit(f"RESTATE_COMPILE={value!r}: use 1 to compile with mypyc, or 0 / unset")


#: set while setuptools runs setup.py only to learn the build requirements (mypy may not be
#: installed yet: it is one of them)
ASKING = "RESTATE_BUILD_ASKING_REQUIREMENTS"


def _requires(ask: Callable[[Any], list[str]], config_settings: Any) -> list[str]:
    os.environ[ASKING] = "1"
    try:
        found = ask(config_settings)
    finally:
        del os.environ[ASKING]
    return [*found, MYPY] if wants_compile(os.environ) else found


def get_requires_for_build_wheel(config_settings: Any = None) -> list[str]:
    return _requires(_setuptools.get_requires_for_build_wheel, config_settings)


def get_requires_for_build_editable(config_settings: Any = None) -> list[str]:
    if wants_compile(os.environ):  # extension modules in the source tree would shadow it
        raise SystemExit(
            "RESTATE_COMPILE=1 builds a wheel: use pip install . (an editable install, -e, "
            "stays pure Python; unset RESTATE_COMPILE for it)"
        )
    return _setuptools.get_requires_for_build_editable(config_settings)
