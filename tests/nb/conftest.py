"""Fixtures for the notebook layer: a real in-process IPython shell with the extension
loaded on a fresh controller, and a kernelspec for nbclient runs against a real ipykernel."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("IPython")
pytest.importorskip("ipywidgets")

from IPython.core.interactiveshell import InteractiveShell

import restate_nb

from .notebook_runner import write_kernelspec


class Shell:
    """An InteractiveShell with helpers that fail loudly on unexpected errors."""

    def __init__(self, ip: InteractiveShell) -> None:
        self.ip = ip
        self._ids = 0

    @property
    def ns(self) -> dict[str, Any]:
        return self.ip.user_ns

    @property
    def session(self) -> Any:
        return restate_nb._sessions[id(self.ip)]

    @property
    def controller(self) -> Any:
        return restate_nb.get_controller()

    def run(self, code: str, cell_id: str | None = None) -> Any:
        """Run ``code`` as a cell; re-raise what it raised (its result when it succeeded)."""
        result = self.ip.run_cell(code, store_history=True, cell_id=cell_id)
        result.raise_error()
        return result.result

    def run_raw(self, code: str, cell_id: str | None = None) -> Any:
        return self.ip.run_cell(code, store_history=True, cell_id=cell_id)

    def tracked(self, code: str, cell_id: str | None = None) -> Any:
        """Run a ``%%restate track`` cell and return its TrackedCell."""
        if cell_id is None:
            self._ids += 1
            cell_id = f"cell-{self._ids}"
        return self.run_tracked_with("%%restate track\n" + code, cell_id)

    def run_tracked_with(self, cell: str, cell_id: str | None = None) -> Any:
        """Run a whole ``%%restate track ...`` cell (header included); its TrackedCell."""
        if cell_id is None:
            self._ids += 1
            cell_id = f"cell-{self._ids}"
        self.run(cell, cell_id=cell_id)
        return self.session.cells.last_tracked


def seen(cell: Any) -> str:
    """What a person sees in a tracked cell's Output widget, as text (ANSI stripped)."""
    import re

    parts = []
    for out in cell.output.outputs:
        if out["output_type"] == "stream":
            parts.append(out["text"])
        elif out["output_type"] == "error":
            parts.append("\n".join(out["traceback"]) + "\n")
        else:
            parts.append(out["data"].get("text/plain", "") + "\n")
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", "".join(parts))


@pytest.fixture
def shell(monkeypatch: pytest.MonkeyPatch) -> Iterator[Shell]:
    ip = InteractiveShell.instance()
    monkeypatch.setattr(restate_nb.controller, "_controller", None)
    ip.run_cell("%load_ext restate_nb")
    try:
        yield Shell(ip)
    finally:
        ip.run_cell("%unload_ext restate_nb")
        for name in [n for n in ip.user_ns if not n.startswith("_") and n not in ip.user_ns_hidden]:
            ip.user_ns.pop(name, None)


@pytest.fixture(scope="session")
def kernel_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A JUPYTER_PATH holding the test kernelspec (this interpreter + this checkout)."""
    path = tmp_path_factory.mktemp("jupyter")
    write_kernelspec(path)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(path))
        yield path
