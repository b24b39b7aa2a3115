"""Child processes for tests: a Python child running a script (``python -c``) or a module
(``python -m``), its output lines read with deadlines, killed with SIGKILL, reaped.

    with Child.script(WRITER, str(base)) as child:   # from the repository root, on PYTHONPATH
        child.expect("ready")                         # fails (naming the child) after 60 s
        child.kill()                                  # kill -9, then reaped

A thread queues the child's stdout lines as they come, so a wait never blocks past its
deadline even when the child hangs without printing. Leaving the ``with`` block kills a
child still running. ``RedisProcs`` runs ``tests/redis/procs.py`` (JSON lines).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pytest

__all__ = ["LINE_DEADLINE", "ROOT", "Child", "RedisProcs", "read_line", "run_together"]

ROOT = Path(__file__).resolve().parents[1]
LINE_DEADLINE = 60  # seconds a child may take to print its next line on a busy machine


class Child:
    """A running Python child; see the module docstring.

    Args:
        argv: what follows ``python`` (``["-c", code, *args]`` or ``["-m", name, *args]``).
        name: how failures name it (default: the argv without the code).
        json_lines: ``read_line`` decodes each line as JSON.
    """

    def __init__(self, argv: Sequence[str], name: str | None = None, json_lines: bool = False):
        self.name = name or " ".join(argv if argv[0] != "-c" else ["-c ...", *argv[2:]])
        self.json_lines = json_lines
        path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(
            [sys.executable, *argv],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": path},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    @classmethod
    def script(cls, code: str, *args: str) -> Self:
        return cls(["-c", code, *args])

    @classmethod
    def module(cls, module: str, *args: str, json_lines: bool = False) -> Self:
        return cls(["-m", module, *args], json_lines=json_lines)

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:
            for line in self.proc.stdout:
                self.lines.put(line)
        self.lines.put("")  # end of output

    # ----- talking to it ---------------------------------------------------------------------

    def read_line(self, timeout: float = LINE_DEADLINE) -> Any:
        """The next line (without its newline; decoded with ``json_lines``); fails, naming
        the child, when none comes within ``timeout`` seconds or it exited."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"child {self.name} printed nothing for {timeout} s")
        if not line:
            pytest.fail(f"child {self.name} exited with {self.proc.wait(10)} instead of printing")
        line = line.rstrip("\n")
        return json.loads(line) if self.json_lines else line

    def expect(self, line: str, timeout: float = LINE_DEADLINE) -> None:
        """Fail unless the next line is ``line`` (e.g. ``"ready"``)."""
        got = self.read_line(timeout)
        assert got == line, f"child {self.name} printed {got!r}, not {line!r}"

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    # ----- ending it -------------------------------------------------------------------------

    def poll(self) -> int | None:
        return self.proc.poll()

    def send_signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL (when still running), then reap it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:  # (unflushed input of a dead child)
                pass

    def wait(self, timeout: float = LINE_DEADLINE) -> int:
        """Its exit code; kills it and fails when it runs past ``timeout`` seconds."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"child {self.name} did not exit within {timeout} s")

    def finish(self, timeout: float = LINE_DEADLINE) -> None:
        """Close its stdin (a child reading it to the end then exits) and wait for it."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.wait(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill()


class RedisProcs(Child):
    """A ``tests/redis/procs.py`` child (``RedisProcs("hold", url, prefix)``): JSON lines."""

    def __init__(self, *args: str) -> None:
        super().__init__(["-m", "tests.redis.procs", *args], name=args[0], json_lines=True)


def read_line(child: Child, timeout: float = LINE_DEADLINE) -> Any:
    """``child.read_line(timeout)``."""
    return child.read_line(timeout)


def run_together(script: str, args: Sequence[str], count: int, timeout: float = 300) -> None:
    """Run ``count`` copies of ``script``, which prints ``ready`` then waits for a line on
    stdin, released at once so that their work really interleaves; each must exit 0 within
    ``timeout`` seconds (all are killed otherwise)."""
    children = [Child.script(script, *args) for _ in range(count)]
    try:
        for child in children:
            child.expect("ready")
        for child in children:
            child.send("go")
        for child in children:
            assert child.wait(timeout) == 0, f"child {child.name} failed"
    finally:
        for child in children:
            child.kill()
