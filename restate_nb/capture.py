"""Capture what a block of code prints and displays, in order, as nbformat output dicts.

IPython's own ``capture_output`` keeps stdout, stderr and rich displays in three separate
buckets, so a cell that prints, displays a plot and prints again would come back reordered.
``OutputCapture`` keeps one list, in the order things happened, ready to be assigned to
``ipywidgets.Output.outputs``::

    with OutputCapture(shell) as cap:
        print("a"); display(HTML("<b>b</b>")); print("c")
    cap.outputs  # [stream 'a\\n', display_data text/html, stream 'c\\n']

It swaps ``sys.stdout``, ``sys.stderr``, ``sys.displayhook`` and ``shell.display_pub``, which
are process globals: callers serialise captures (tracked cells run under the controller lock).
"""

from __future__ import annotations

import io
import sys
from types import TracebackType
from typing import Any

from IPython.core.displaypub import DisplayPublisher

__all__ = ["OutputCapture", "error_output"]

Output = dict[str, Any]


class OutputCapture:
    """A context manager collecting stream, display and error outputs in order."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.outputs: list[Output] = []
        self.display_ids: dict[str, Output] = {}
        self._saved: tuple[Any, ...] = ()

    def __enter__(self) -> OutputCapture:
        shell = self.shell
        self._saved = (sys.stdout, sys.stderr, sys.displayhook, shell.display_pub)
        sys.stdout = _Stream(self, "stdout")
        sys.stderr = _Stream(self, "stderr")
        sys.displayhook = self.display_value
        shell.display_pub = _Publisher(self, shell=shell)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.stdout, sys.stderr, sys.displayhook, self.shell.display_pub = self._saved

    def write(self, name: str, text: str) -> None:
        """Append ``text`` to the stream ``name``, merging with a directly preceding chunk."""
        if not text:
            return
        last = self.outputs[-1] if self.outputs else None
        if last is not None and last["output_type"] == "stream" and last["name"] == name:
            last["text"] += text
        else:
            self.outputs.append({"output_type": "stream", "name": name, "text": text})

    def display(self, data: dict[str, Any], metadata: dict[str, Any] | None) -> None:
        """Append a rich display (a mimebundle)."""
        self.outputs.append(
            {"output_type": "display_data", "data": dict(data), "metadata": dict(metadata or {})}
        )

    def display_value(self, value: Any) -> None:
        """``sys.displayhook`` while capturing: show a cell's last expression."""
        if value is None:
            return
        data, metadata = self.shell.display_formatter.format(value)
        self.display(data, metadata)

    def add_error(self, error: BaseException, tb_offset: int = 0) -> None:
        """Append ``error`` with IPython's coloured traceback."""
        self.outputs.append(error_output(self.shell, error, tb_offset))

    def clear(self) -> None:
        self.outputs.clear()
        self.display_ids.clear()


def error_output(shell: Any, error: BaseException, tb_offset: int = 0) -> Output:
    """An nbformat ``error`` output for ``error``, traceback formatted like IPython's."""
    etype = type(error)
    tb: TracebackType | None = error.__traceback__
    try:
        lines = shell.InteractiveTB.structured_traceback(etype, error, tb, tb_offset=tb_offset)
    except Exception:  # a broken formatter must not hide the user's error
        lines = [f"{etype.__name__}: {error}"]
    return {
        "output_type": "error",
        "ename": etype.__name__,
        "evalue": str(error),
        "traceback": list(lines),
    }


class _Stream(io.TextIOBase):
    """A text stream that forwards to ``OutputCapture.write``."""

    def __init__(self, capture: OutputCapture, name: str) -> None:
        super().__init__()
        self._capture = capture
        self._name = name

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        self._capture.write(self._name, str(text))
        return len(text)


class _Publisher(DisplayPublisher):
    """``shell.display_pub`` while capturing: ``display()``, ``update_display()``, clear."""

    def __init__(self, capture: OutputCapture, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._capture = capture
        self._wait_clear = False

    def publish(
        self,
        data: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        source: Any = None,
        *,
        transient: dict[str, Any] | None = None,
        update: bool = False,
    ) -> None:
        if self._wait_clear:
            self._capture.clear()
            self._wait_clear = False
        display_id = (transient or {}).get("display_id")
        if update:
            self._update(display_id, data, metadata)
            return
        self._capture.display(data, metadata)
        if display_id:
            self._capture.display_ids[display_id] = self._capture.outputs[-1]

    def _update(self, display_id: Any, data: dict[str, Any], metadata: Any) -> None:
        output = self._capture.display_ids.get(display_id)
        if output is not None:
            output["data"] = dict(data)
            output["metadata"] = dict(metadata or {})

    def clear_output(self, wait: bool = False) -> None:
        if wait:
            self._wait_clear = True
        else:
            self._capture.clear()
