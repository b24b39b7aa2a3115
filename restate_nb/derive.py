"""``%restate derive DEST = EXPR``: an expression written to DEST again when what it read changes.

It is an ``"eager"`` tracked function of the controller named ``derive DEST``, so it settles
inside the write, like ``controller.derive``: after ``state["/a"] = 2`` the next line already
sees the new DEST. The cell that ran ``%restate derive`` keeps an Output widget (empty while
all is well): a failing re-run shows its traceback there, from the expression on, while the
writer's cell gets one line on stderr; readers of DEST are marked stale until it recovers
(the core scheduler's marks). An expression that reads its own DEST is refused with a
``CycleError`` (raised by the magic, nothing stays registered).
"""

from __future__ import annotations

import itertools
import linecache
import sys
from pathlib import PurePosixPath
from typing import Any

from restate._engine.tracking import RECORDER
from restate.errors import CycleError
from restate.paths import parts_to_path, parts_to_str, related, to_parts

from .capture import OutputCapture
from .tracked_cell import failure_note, from_user_code

__all__ = ["ExpressionDerivation", "ExpressionDerivations"]


class ExpressionDerivation:
    """One ``%restate derive DEST = EXPR`` registration and its Output widget."""

    def __init__(self, number: int, dest: PurePosixPath, expr: str, owner: ExpressionDerivations):
        import ipywidgets

        self.number = number
        self.dest = dest
        self.expr = expr
        filename = f"<restate derive {dest}>"
        self.code = compile(expr, filename, "eval")
        # tracebacks show the expression's line (mtime None: checkcache leaves it alone)
        linecache.cache[filename] = (len(expr), None, [expr + "\n"], filename)
        self.output = ipywidgets.Output()
        self.tracker_id: Any = None
        self.active = True
        self.runs = 0
        self._owner = owner

    @property
    def name(self) -> str:
        return f"derive {self.dest}"

    def __call__(self, event: Any) -> None:
        if not self.active:
            return
        shell = self._owner.shell
        self.runs += 1
        try:
            value = eval(self.code, shell.user_global_ns, shell.user_ns)
            self._check_reads()
        except Exception as error:
            if self.runs > 1:  # the first error is raised by the magic in this very cell
                with OutputCapture(shell) as capture:
                    capture.add_error(from_user_code(error))
                self.output.outputs = tuple(capture.outputs)
                print(failure_note(self.name, error), file=sys.stderr)
            raise
        self.output.outputs = ()
        self._owner.controller.set_state(self.dest, value)

    def _check_reads(self) -> None:
        """Refuse before writing when EXPR read DEST: every write would trigger the next."""
        footprint = RECORDER.get()
        dest = to_parts(self.dest)
        loop = sorted(r for r in (footprint.reads if footprint else ()) if related(r, dest))
        if loop:
            shown = ", ".join(parts_to_str(p) for p in loop)
            raise CycleError(
                f"%restate derive {self.dest} reads {shown}: each write would trigger the "
                f"next. Nothing was written; derive from other paths."
            )

    def describe(self) -> str:
        return f"derive #{self.number} {self.dest} = {self.expr}"


class ExpressionDerivations:
    """The ``%restate derive`` registrations of one shell, one per DEST."""

    def __init__(self, shell: Any, controller: Any) -> None:
        self.shell = shell
        self.controller = controller
        self.by_dest: dict[PurePosixPath, ExpressionDerivation] = {}
        self._numbers = itertools.count(1)

    def derive(self, dest: Any, expr: str) -> ExpressionDerivation:
        """Register ``DEST = EXPR`` (replacing one for the same DEST) and evaluate it now.

        Raises:
            SyntaxError: EXPR is not an expression (nothing registered).
            CycleError: EXPR reads DEST (nothing registered).
            Exception: whatever the first evaluation raised; it stays registered and
                re-evaluates when what it read changes.
        """
        from IPython.display import display

        dest = parts_to_path(to_parts(dest))
        derivation = ExpressionDerivation(next(self._numbers), dest, expr.strip(), self)
        self.remove(dest)
        self.by_dest[dest] = derivation
        try:
            derivation.tracker_id = self.controller.track(
                derivation,
                payload=derivation,
                name=derivation.name,
                policy="eager",
                raise_errors=False,
            )
        except CycleError:  # a loop through other tracked code: refused, not kept
            derivation.tracker_id = self._tracker_of(derivation)
            self.drop(derivation)
            raise
        info = next(i for i in self.controller.trackers() if i.id == derivation.tracker_id)
        if isinstance(info.error, CycleError):
            self.drop(derivation)
            raise info.error
        display(derivation.output)  # empty until a re-run fails
        if info.error is not None:
            raise info.error
        return derivation

    def _tracker_of(self, derivation: ExpressionDerivation) -> Any:
        ids = [i.id for i in self.controller.trackers() if i.payload is derivation]
        return ids[-1] if ids else None

    def remove(self, dest: Any) -> bool:
        """Stop the derivation of ``dest``; False when there is none."""
        derivation = self.by_dest.get(parts_to_path(to_parts(dest)))
        if derivation is None:
            return False
        self.drop(derivation)
        return True

    def drop(self, derivation: ExpressionDerivation) -> None:
        derivation.active = False
        if self.by_dest.get(derivation.dest) is derivation:
            del self.by_dest[derivation.dest]
        if derivation.tracker_id is not None:
            tracker_id, derivation.tracker_id = derivation.tracker_id, None
            self.controller.untrack(tracker_id)

    def remove_all(self) -> int:
        count = len(self.by_dest)
        for dest in list(self.by_dest):
            self.remove(dest)
        return count
