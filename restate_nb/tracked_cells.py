"""Which tracked cells exist, when they re-run, and in what order.

Each tracked cell is registered with ``controller.track``; the controller calls it back on
the writer's thread when a path it read changes. What happens then depends on who wrote:

* a cell being executed by the kernel (its main thread, between ``pre_run_cell`` and
  ``post_run_cell``): the cell is queued, and the queue is run after the executing cell
  finishes, each queued cell once, a cell that writes what another reads first. So
  ``state["/a"] = 1; state["/b"] = 2`` re-runs a cell reading both once, not twice. Re-running
  a cell means ``untrack`` + ``track`` again: the controller records the paths of that run.
* anything else (a widget callback between executions, another thread, a backend watch):
  the cell re-runs at once, inside the controller's callback.

Derive cells (``%%restate derive DEST``) always re-run at once, like core derivations: code
after the write in the same cell sees the new value.

The queue is not a ``controller.batch()``: a batch holds the controller lock for its whole
duration, and a cell that starts a thread which writes and then joins it would deadlock.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

from IPython.display import display

from restate.paths import parts_to_str, related, to_parts

from .tracked_cell import Recorder, TrackedCell, compile_body, cycle_output

__all__ = ["TrackedCells"]

CELL_MAGICS = ("%%restate track", "%%restate derive")


class TrackedCells:
    """The tracked cells of one IPython shell over one controller."""

    def __init__(self, shell: Any, controller: Any, recorder: Recorder) -> None:
        self.shell = shell
        self.controller = controller
        self.recorder = recorder
        self.cells: dict[Any, TrackedCell] = {}
        self.max_rounds: int = getattr(controller, "max_rounds", 100)
        self._numbers = itertools.count(1)
        self._depth = 0
        self._exec_thread: int | None = None
        self._cell_id: str | None = None
        self._count: int | None = None
        self._pending: dict[TrackedCell, None] = {}
        self._draining = False
        self.untracked_on_entry: TrackedCell | None = None
        self.last_tracked: TrackedCell | None = None
        self._registered_now: list[TrackedCell] = []

    @property
    def current_cell_id(self) -> str | None:
        """The id of the notebook cell being executed (None outside one or without ids)."""
        return self._cell_id

    # -- registration -------------------------------------------------------------------

    def track(self, source: str, dest: Any = None) -> TrackedCell:
        """Register and run a tracked cell; re-running the same cell replaces it.

        Raises:
            SyntaxError: invalid body (nothing registered, a previous version is removed).
            ValueError: a derive cell whose body does not end with an expression.
        """
        key = ("id", self._cell_id) if self._cell_id else ("source", source, str(dest))
        old = self.cells.pop(key, None)
        if old is not None:
            self.untrack(old)
            old.output.close()
        count = self._count if self._count is not None else self.shell.execution_count
        body = compile_body(self.shell, source, want_value=dest is not None, count=count)
        cell = TrackedCell(
            number=next(self._numbers),
            key=key,
            source=source,
            body=body,
            shell=self.shell,
            controller=self.controller,
            recorder=self.recorder,
            dest=dest,
            label=f"In[{count}]",
        )
        cell.callback = self._callback_for(cell)
        self.cells[key] = cell
        self.last_tracked = cell
        self._registered_now.append(cell)
        display(cell.output)
        self._register(cell)
        return cell

    def untrack(self, cell: TrackedCell) -> None:
        """Stop re-running ``cell``; its last output stays visible."""
        cell.active = False
        self._pending.pop(cell, None)
        if self.cells.get(cell.key) is cell:
            del self.cells[cell.key]
        if cell.tracker_id is not None:
            tracker_id, cell.tracker_id = cell.tracker_id, None
            self.controller.untrack(tracker_id)

    def untrack_all(self) -> int:
        cells = list(self.cells.values())
        for cell in cells:
            self.untrack(cell)
        return len(cells)

    def by_number(self, number: int) -> TrackedCell | None:
        return next((c for c in self.cells.values() if c.number == number), None)

    def reads_of(self, cell: TrackedCell) -> frozenset[Any]:
        """The paths the controller recorded for ``cell``'s last run."""
        for info in self.controller.trackers():
            if info.id == cell.tracker_id:
                return frozenset(info.paths)
        return frozenset()

    def _register(self, cell: TrackedCell) -> None:
        cell.starting = True
        try:
            cell.tracker_id = self.controller.track(cell.callback, payload=cell)
        except BaseException:  # interrupted: the controller keeps the tracker, so do we
            ids = [i.id for i in self.controller.trackers() if i.payload is cell]
            cell.tracker_id = ids[-1] if ids else None
            raise
        finally:
            cell.starting = False
        if cell.self_loop:
            self.untrack(cell)

    def _callback_for(self, cell: TrackedCell) -> Any:
        def on_change(event: Any) -> None:
            if not cell.active:
                return
            if cell.restoring:
                self._read_all(cell.kept_reads)
            elif cell.starting or not self._defers(cell):
                cell.run()
                if cell.self_loop and cell.tracker_id is not None:
                    self.untrack(cell)
            elif cell not in self._pending:
                # Reading nothing here leaves the tracker without paths until the drain
                # re-tracks the cell: further writes in this execution cost nothing.
                cell.kept_reads = self.reads_of(cell)
                self._pending[cell] = None

        return on_change

    def _defers(self, cell: TrackedCell) -> bool:
        executing = self._depth > 0 or self._draining
        return executing and not cell.is_derive and threading.get_ident() == self._exec_thread

    def _read_all(self, paths: frozenset[Any]) -> None:
        for path in paths:
            self.controller.get_state(path)

    # -- kernel events ------------------------------------------------------------------

    def pre_run_cell(self, info: Any) -> None:
        self._depth += 1
        if self._depth > 1:
            return
        self._exec_thread = threading.get_ident()
        self._cell_id = getattr(info, "cell_id", None)
        # IPython has already counted this execution when it stores history
        self._count = self.shell.execution_count - bool(getattr(info, "store_history", False))
        self.untracked_on_entry = None
        raw = (getattr(info, "raw_cell", "") or "").lstrip()
        stale = self.cells.get(("id", self._cell_id)) if self._cell_id else None
        if stale is not None and not raw.startswith(CELL_MAGICS):
            self.untrack(stale)  # the cell was edited into a plain cell
            self.untracked_on_entry = stale

    def post_run_cell(self, result: Any) -> None:
        self._depth = max(0, self._depth - 1)
        if self._depth == 0:
            count = getattr(result, "execution_count", None)
            if count is not None:
                # the number the frontend shows for this execution: IPython versions differ
                # in when they count, so pre_run_cell may be one off; the result is not
                for cell in self._registered_now:
                    cell.label = f"In[{count}]"
            self._registered_now.clear()
            self._cell_id = self._count = None
            if self._pending and not self._draining:
                self.drain()

    def drain(self) -> None:
        """Re-run the queued cells, each once per round, writers before their readers."""
        self._draining = True
        runs: dict[TrackedCell, int] = {}
        try:
            for _ in range(self.max_rounds):
                if not self._pending:
                    return
                for cell in self._ordered(list(self._pending)):
                    if cell in self._pending and cell.active:
                        del self._pending[cell]
                        runs[cell] = runs.get(cell, 0) + 1
                        self._rerun(cell)
            self._report_cycle([c for c, n in runs.items() if n > 1] or list(self._pending))
        finally:
            self._draining = False
            left, self._pending = list(self._pending), {}
            for cell in left:  # interrupted: keep their old dependencies, run nothing
                self._restore(cell)

    def _restore(self, cell: TrackedCell) -> None:
        cell.restoring = True
        try:
            self._rerun(cell)
        finally:
            cell.restoring = False

    def _rerun(self, cell: TrackedCell) -> None:
        if cell.tracker_id is not None:
            self.controller.untrack(cell.tracker_id)
            cell.tracker_id = None
        self._register(cell)

    def _ordered(self, cells: list[TrackedCell]) -> list[TrackedCell]:
        """Topological order by "writes what the other reads", ties by creation order."""
        cells.sort(key=lambda c: c.number)
        reads = {c: {to_parts(p) for p in c.kept_reads} | c.log.reads for c in cells}
        feeds = {
            c: [d for d in cells if d is not c and _feeds(c.log.writes, reads[d])] for c in cells
        }
        waiting = {c: sum(c in feeds[d] for d in cells) for c in cells}
        ordered: list[TrackedCell] = []
        while len(ordered) < len(cells):
            ready = [c for c in cells if waiting[c] == 0 and c not in ordered]
            nxt = ready[0] if ready else next(c for c in cells if c not in ordered)
            ordered.append(nxt)
            waiting[nxt] = -1
            for d in feeds[nxt]:
                waiting[d] -= 1
        return ordered

    def _report_cycle(self, cells: list[TrackedCell]) -> None:
        paths = ", ".join(sorted({parts_to_str(w) for c in cells for w in c.log.writes}))
        names = ", ".join(f"#{c.number}" for c in cells)
        message = (
            f"tracked cells {names} kept re-running each other for {self.max_rounds} rounds "
            f"(they write {paths}, which they also read). They are no longer tracked: "
            f"break the loop, then run them again."
        )
        for cell in cells:
            cell.show_error(cycle_output(message))
            self.untrack(cell)


def _feeds(writes: set[Any], reads: set[Any]) -> bool:
    return any(related(w, r) for w in writes for r in reads)
