"""The opt-in compiled build: ``RESTATE_COMPILE=1 pip install .`` compiles restate's pure,
hot modules with mypyc (docs/development.md, "The compiled build").

Without ``RESTATE_COMPILE`` this adds nothing: the wheel is pure Python, as pyproject.toml
declares it. The compiled wheel keeps every ``.py`` beside its extension module; I/O modules
(files, SQLite, Redis) are never compiled (mypyc once miscompiled a slice of the file
writer's buffer).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import setup

sys.path.insert(0, str(Path(__file__).resolve().parent / "build_hook"))
from restate_build import ASKING, compiled_modules, wants_compile

if wants_compile(os.environ) and not os.environ.get(ASKING):
    try:
        from mypyc.build import mypycify
    except ImportError as exc:  # only with --no-build-isolation: the backend asks for mypy
        raise SystemExit(
            "RESTATE_COMPILE=1 needs mypy (it includes mypyc) where the wheel is built: "
            "pip install mypy, or drop --no-build-isolation"
        ) from exc
    # one shared library for the group, named after the package (restate__mypyc)
    setup(ext_modules=mypycify(compiled_modules(), opt_level="3", group_name="restate"))
else:
    setup()
