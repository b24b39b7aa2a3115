"""The tracked cells of one shell, on the core scheduler (restate/_engine/scheduler.py).

Each tracked cell is a tracked function of the controller, named ``cell [N]``. The scheduler
decides when it runs; this module only maps kernel events onto it:

* while the kernel executes a cell (``pre_run_cell`` .. ``post_run_cell``), the main thread is
  inside ``controller.deferring()``: its writes only mark tracked cells due, and the end of
  the execution runs them once each, writers before readers. So ``state["/a"] = 1;
  state["/b"] = 2`` re-runs a cell reading both once, after the writing cell;
* writes from anything else (a widget callback between executions, another thread, another
  process) re-run the cell at once, in the writing thread, once the write has released the
  controller's lock (so its body may join a thread that writes state);
* derive cells (``%%restate derive DEST``) are ``"eager"``: they re-run inside the write even
  during an execution, so code after the write in the same cell sees the new DEST;
* ``--lazy`` cells are ``"lazy"``: a change marks them stale (their status line says which
  path changed, their old output stays) until ``%restate run``; ``--debounce SECONDS`` cells
  are lazy cells that run by themselves once their inputs were quiet for SECONDS (latest
  wins: a burst of writes causes one run, for the last value).

A loop between cells is refused by the scheduler after the pass that revealed it: each cell
in it shows the ``CycleError`` naming the chain and stays registered, refused, until it is
executed again.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

from IPython.display import display

from restate.errors import CycleError

from .tracked_cell import TrackedCell, compile_body

__all__ = ["TrackedCells"]

CELL_MAGICS = ("%%restate track", "%%restate derive")


class TrackedCells:
    """The tracked cells of one IPython shell over one controller.

    Responsibilities: register cells with the controller (replacing a re-executed one), hold
    deferral for the duration of each kernel execution, and show the scheduler's marks
    (stale, refused) in the cells; running and ordering them is the scheduler's.
    """

    def __init__(self, shell: Any, controller: Any) -> None:
        self.shell = shell
        self.controller = controller
        self.cells: dict[Any, TrackedCell] = {}
        self._numbers = itertools.count(1)
        self._depth = 0
        self._deferring: Any = None
        self._exec_thread: int | None = None
        self._cell_id: str | None = None
        self._count: int | None = None
        self.untracked_on_entry: TrackedCell | None = None
        self.last_tracked: TrackedCell | None = None
        self._registered_now: list[TrackedCell] = []

    @property
    def current_cell_id(self) -> str | None:
        """The id of the notebook cell being executed (None outside one or without ids)."""
        return self._cell_id

    def writer_name(self) -> str | None:
        """Who is writing, for why lines: the executing cell, or a widget between cells."""
        if threading.get_ident() != threading.main_thread().ident:
            return None  # the scheduler names the thread
        if self._depth > 0 and self._count is not None:
            return f"cell [{self._count}]"
        return "a widget" if self._depth == 0 else None

    # -- registration -------------------------------------------------------------------

    def track(
        self,
        source: str,
        dest: Any = None,
        *,
        lazy: bool = False,
        debounce: float | None = None,
    ) -> TrackedCell:
        """Register and run a tracked cell; re-running the same cell replaces it.

        Raises:
            SyntaxError: invalid body (nothing registered, a previous version is removed).
            ValueError: a derive cell whose body does not end with an expression, or a
                negative debounce.
        """
        if debounce is not None and debounce < 0:
            raise ValueError(f"--debounce takes seconds >= 0, not {debounce}")
        key = ("id", self._cell_id) if self._cell_id else ("source", source, str(dest))
        old = self.cells.pop(key, None)
        if old is not None:
            self.untrack(old)
            old.view.close()
        count = self._count if self._count is not None else self.shell.execution_count
        body = compile_body(self.shell, source, want_value=dest is not None, count=count)
        policy = "eager" if dest is not None else "lazy" if lazy or debounce else "now"
        cell = TrackedCell(
            number=next(self._numbers),
            key=key,
            source=source,
            body=body,
            shell=self.shell,
            controller=self.controller,
            dest=dest,
            label=f"In[{count}]",
            policy=policy,
            debounce=debounce,
        )
        self.cells[key] = cell
        self.last_tracked = cell
        self._registered_now.append(cell)
        display(cell.view)
        self._register(cell)
        return cell

    def _register(self, cell: TrackedCell) -> None:
        try:
            cell.tracker_id = self.controller.track(
                cell,
                payload=cell,
                name=cell.name,
                policy=cell.policy,
                on_mark=lambda _tid: self._marked(cell),
                raise_errors=False,
            )
        except CycleError:  # its first run closed a loop: the marks already show it
            cell.tracker_id = self._tracker_of(cell)
        except BaseException:  # interrupted: the controller keeps the tracker, so do we
            cell.tracker_id = self._tracker_of(cell)
            raise
        cell.show_status()

    def _tracker_of(self, cell: TrackedCell) -> Any:
        ids = [i.id for i in self.controller.trackers() if i.payload is cell]
        return ids[-1] if ids else None

    def _marked(self, cell: TrackedCell) -> None:
        """The scheduler marked ``cell`` (due, stale, refused) or cleared a mark."""
        if cell.tracker_id is None:  # its first run is still going on: the id comes next
            cell.tracker_id = self._tracker_of(cell)
        info = cell.info()
        if info is None:
            return
        if info.status == "refused":
            cell.show_refused(info.error)
            return
        cell.show_status()
        if cell.debounce is not None and info.status == "stale" and info.reason:
            self._restart_timer(cell)

    def _restart_timer(self, cell: TrackedCell) -> None:
        if cell.timer is not None:
            cell.timer.cancel()
        tid = cell.tracker_id
        cell.timer = threading.Timer(cell.debounce or 0.0, self._run_debounced, (cell, tid))
        cell.timer.daemon = True
        cell.timer.start()

    def _run_debounced(self, cell: TrackedCell, tid: Any) -> None:
        if cell.active and cell.tracker_id == tid:
            self.run_stale(only=[tid])

    def untrack(self, cell: TrackedCell) -> None:
        """Stop re-running ``cell``; its last output stays visible."""
        cell.active = False
        if cell.timer is not None:
            cell.timer.cancel()
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

    def by_tracker(self) -> dict[Any, TrackedCell]:
        return {c.tracker_id: c for c in self.cells.values() if c.tracker_id is not None}

    def run_stale(self, only: Any = None) -> int:
        """Run the stale lazy cells now (``%restate run``), writers first; how many ran."""
        try:
            return int(self.controller.run_deferred(lazy=True, only=only))
        except CycleError:
            return 0  # the refused cells show it

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
        self._deferring = self.controller.deferring()
        self._deferring.__enter__()

    def post_run_cell(self, result: Any) -> None:
        self._depth = max(0, self._depth - 1)
        if self._depth:
            return
        count = getattr(result, "execution_count", None)
        if count is not None:
            # the number the frontend shows for this execution: IPython versions differ
            # in when they count, so pre_run_cell may be one off; the result is not
            for cell in self._registered_now:
                self._relabel(cell, f"In[{count}]")
        self._registered_now.clear()
        self._cell_id = self._count = None
        deferring, self._deferring = self._deferring, None
        if deferring is not None:
            try:
                deferring.__exit__(None, None, None)  # runs the cells this execution made due
            except CycleError:
                pass  # the refused cells show it

    def _relabel(self, cell: TrackedCell, label: str) -> None:
        if cell.label == label:
            return
        cell.label = label
        # the scheduler names the cell in loops and why lines: keep its name in step
        tracker = self.controller._engine.trackers.get(cell.tracker_id)
        if tracker is not None:
            tracker.name = cell.name
        cell.show_status()
