"""``%restate derive DEST = EXPR``: an expression written to DEST again when what it read changes.

It is a tracked function of the controller, so it settles at once, like ``controller.derive``:
after ``state["/a"] = 2`` the next line already sees the new DEST. An error in a re-run is
raised to the writer (as a failing core derivation would be); an expression that reads its
own DEST raises ``CycleError`` and is removed.
"""

from __future__ import annotations

import itertools
import time
from pathlib import PurePosixPath
from typing import Any

from restate.errors import CycleError
from restate.paths import parts_to_path, related, to_parts

from .tracked_cell import Recorder, self_loop_message

__all__ = ["ExpressionDerivation", "ExpressionDerivations"]


class ExpressionDerivation:
    """One ``%restate derive DEST = EXPR`` registration."""

    def __init__(self, number: int, dest: PurePosixPath, expr: str, owner: ExpressionDerivations):
        self.number = number
        self.dest = dest
        self.expr = expr
        self.code = compile(expr, f"<restate derive {dest}>", "eval")
        self.tracker_id: Any = None
        self.starting = False
        self.first_error: Exception | None = None
        self.active = True
        self.runs = 0
        self.last_run: float | None = None
        self.last_error: str | None = None
        self._owner = owner

    def __call__(self, event: Any) -> None:
        if not self.active:
            return
        if not self.starting:
            self._evaluate()
            return
        try:  # the first run's error is raised by derive(), after track() returned
            self._evaluate()
        except Exception as error:
            self.first_error = error

    def _evaluate(self) -> None:
        shell = self._owner.shell
        with self._owner.recorder.recording() as log:
            try:
                value = eval(self.code, shell.user_global_ns, shell.user_ns)
            except Exception as error:
                self.last_error = f"{type(error).__name__}: {error}"
                raise
        dest = to_parts(self.dest)
        loop = sorted(r for r in log.reads if related(r, dest))
        if loop:
            self.last_error = "CycleError"
            self._owner.drop(self)
            raise CycleError(self_loop_message(f"%restate derive {self.dest}", loop))
        self.runs += 1
        self.last_run = time.time()
        self.last_error = None
        self._owner.controller.set_state(self.dest, value)

    def describe(self) -> str:
        return f"derive #{self.number} {self.dest} = {self.expr}"


class ExpressionDerivations:
    """The ``%restate derive`` registrations of one shell, one per DEST."""

    def __init__(self, shell: Any, controller: Any, recorder: Recorder) -> None:
        self.shell = shell
        self.controller = controller
        self.recorder = recorder
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
        dest = parts_to_path(to_parts(dest))
        derivation = ExpressionDerivation(next(self._numbers), dest, expr.strip(), self)
        self.remove(dest)
        self.by_dest[dest] = derivation
        derivation.starting = True
        try:
            derivation.tracker_id = self.controller.track(derivation, payload=derivation)
        finally:
            derivation.starting = False
        error, derivation.first_error = derivation.first_error, None
        if not derivation.active:
            self.drop(derivation)
        if error is not None:
            raise error
        return derivation

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
