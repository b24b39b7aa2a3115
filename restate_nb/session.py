"""What ``%load_ext restate_nb`` sets up in one shell, and what every ``%restate`` command does."""

from __future__ import annotations

import warnings
from pathlib import PurePosixPath
from typing import Any

from IPython.display import display

from restate.missing import MISSING

from .backend_switch import BACKENDS, describe_backend, make_backend, prepare_switch
from .derive import ExpressionDerivation, ExpressionDerivations
from .graph_view import status_markdown, status_text
from .proxy import StateProxy
from .tracked_cell import TrackedCell
from .tracked_cells import TrackedCells

__all__ = ["BACKENDS", "Session", "make_backend"]


class Session:
    """The extension's state in one IPython shell: proxy, tracked cells, derivations."""

    def __init__(self, shell: Any, controller: Any) -> None:
        self.shell = shell
        self.controller = controller
        self.state = StateProxy(controller)
        self.cells = TrackedCells(shell, controller)
        self.derivations = ExpressionDerivations(shell, controller)
        self._owned_backend: Any = None
        self.trees: list[Any] = []
        self._tree_cells: dict[str, tuple[int, list[Any]]] = {}  # cell id -> (run, trees)
        self._run = 0
        self._cell_id: str | None = None

    def start(self) -> None:
        self.shell.push({"state": self.state})
        # why lines name the writing cell ("cell [4]") or "a widget"
        self.controller.writer_name = self.cells.writer_name
        self.shell.events.register("pre_run_cell", self.cells.pre_run_cell)
        self.shell.events.register("post_run_cell", self.cells.post_run_cell)
        self.shell.events.register("pre_run_cell", self._note_cell)
        self.shell.events.register("post_run_cell", self._flush_trees)

    def stop(self) -> None:
        """Undo ``start`` and untrack every cell and derivation made here."""
        for name, callback in (
            ("pre_run_cell", self.cells.pre_run_cell),
            ("post_run_cell", self.cells.post_run_cell),
            ("pre_run_cell", self._note_cell),
            ("post_run_cell", self._flush_trees),
        ):
            try:
                self.shell.events.unregister(name, callback)
            except ValueError:
                pass
        if self.shell.user_ns.get("state") is self.state:
            del self.shell.user_ns["state"]
        self.cells.untrack_all()
        self.derivations.remove_all()
        if self.controller.writer_name == self.cells.writer_name:
            self.controller.writer_name = None
        for tree in self.trees:
            tree.close()
        self.trees.clear()
        self._tree_cells.clear()

    # -- commands -----------------------------------------------------------------------

    def get(self, path: str) -> Any:
        """The value at ``path`` (a read-only snapshot), or ``MISSING``."""
        return self.state.get(path, MISSING)

    def set(self, path: str, expr: str) -> None:
        self.state[path] = self._eval(expr)

    def delete(self, path: str) -> bool:
        if path in self.state:
            del self.state[path]
            return True
        return False

    def ping(self, path: str) -> None:
        self.controller.ping(path)

    def derive(self, dest: str, expr: str) -> ExpressionDerivation:
        return self.derivations.derive(dest, expr)

    def track(
        self,
        source: str,
        dest: str | None = None,
        *,
        lazy: bool = False,
        debounce: float | None = None,
    ) -> TrackedCell:
        return self.cells.track(source, dest, lazy=lazy, debounce=debounce)

    def run_stale(self) -> int:
        """``%restate run``: run every stale lazy cell now, ancestors first."""
        return self.cells.run_stale()

    def tree(self, path: str = "/") -> Any:
        from .tree_widget import StateTree

        widget = StateTree(self.controller, path)  # adopts itself (adopt_tree)
        display(widget)
        return widget

    # -- trees: one per cell, current when a cell ends -------------------------------------

    def adopt_tree(self, tree: Any) -> None:
        """Keep ``tree`` for closing at unload; a cell run again closes the trees its
        previous run made (re-running the cell that shows a tree replaces that tree)."""
        if self._cell_id is not None:
            run, trees = self._tree_cells.get(self._cell_id, (self._run, []))
            if run != self._run:
                for old in trees:
                    old.close()
                trees = []
            self._tree_cells[self._cell_id] = (self._run, [*trees, tree])
        self.trees = [t for t in self.trees if not t.protocol.closed]
        self.trees.append(tree)

    def _note_cell(self, info: Any = None) -> None:
        self._run += 1
        self._cell_id = getattr(info, "cell_id", None)

    def _flush_trees(self, result: Any = None) -> None:
        """Send what changed during the cell now, so every view and the stored widget state
        show the state as the cell left it (not up to one interval later)."""
        self._cell_id = None
        for tree in self.trees:
            if not tree.protocol.closed:
                tree.protocol.flush()

    def set_backend(self, kind: str, argument: str | None, mode: str = "auto") -> str:
        """Switch the store as ``%restate backend`` documents (backend_switch.py); the line
        saying what happened. On an error nothing changed and the new backend is closed."""
        backend = make_backend(kind, argument)
        old, owned = self.controller.backend, self._owned_backend
        try:
            line = prepare_switch(self.controller, backend, mode, describe_backend(kind, argument))
            self.controller.set_backend(backend)
        except Exception as exc:
            if self.controller.backend is not backend:
                backend.close()
                raise  # the switch itself failed: nothing changed
            # switched; what reacted to the new state failed (say, a derivation reading a
            # path the new store lacks): report it, the switch stands
            warnings.warn(
                f"switched backends, but reacting to the new state failed: "
                f"{type(exc).__name__}: {exc}",
                RuntimeWarning,
                stacklevel=2,
            )
        self._owned_backend = backend
        if owned is not None and old is owned:
            old.close()
        return line

    def untrack(self, target: str | None) -> list[str]:
        """Untrack ``all``, a cell number (``3`` or ``#3``), a derive DEST, or this cell."""
        if target == "all":
            cells = [c.describe() for c in self.cells.cells.values()]
            derived = [d.describe() for d in self.derivations.by_dest.values()]
            self.cells.untrack_all()
            self.derivations.remove_all()
            return cells + derived
        if target is None:
            here = self.cells.untracked_on_entry
            if here is not None:
                return [here.describe()]
            return self._untrack_cell(self.cells.cells.get(("id", self.cells.current_cell_id)))
        if target.lstrip("#").isdigit():
            return self._untrack_cell(self.cells.by_number(int(target.lstrip("#"))))
        derivation = self.derivations.by_dest.get(PurePosixPath("/" + target.lstrip("/")))
        if derivation is not None:
            self.derivations.drop(derivation)
            return [derivation.describe()]
        return []

    def _untrack_cell(self, cell: TrackedCell | None) -> list[str]:
        if cell is None:
            return []
        self.cells.untrack(cell)
        return [cell.describe()]

    def status(self) -> str:
        """``%restate status`` as plain text (tracked cells, derivations, marks)."""
        return status_text(self.controller, self.cells, self.derivations)

    def status_markdown(self) -> str:
        """``%restate status`` as Markdown: the same text and a Mermaid graph."""
        return status_markdown(self.controller, self.cells, self.derivations)

    def _eval(self, expr: str) -> Any:
        return eval(expr, self.shell.user_global_ns, self.shell.user_ns)
