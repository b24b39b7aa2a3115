"""Capture what a block of code prints and displays, in order, as nbformat output dicts.

IPython's own ``capture_output`` keeps stdout, stderr and rich displays in three separate
buckets, so a cell that prints, displays a plot and prints again would come back reordered.
``OutputCapture`` keeps one list, in the order things happened, ready to be assigned to
``ipywidgets.Output.outputs``::

    with OutputCapture(shell) as cap:
        print("a"); display(HTML("<b>b</b>")); print("c")
    cap.outputs  # [stream 'a\\n', display_data text/html, stream 'c\\n']

It swaps ``sys.stdout``, ``sys.stderr``, ``sys.displayhook`` and ``shell.display_pub``, which
are process globals. Only the capturing thread is captured: what other threads print or
display meanwhile (the cell the kernel is executing, while a tracked cell re-runs on a writer
thread) goes where it went before. Callers serialise captures on different threads (tracked
cells run under the controller lock); nested captures on one thread are fine.
"""

from __future__ import annotations

import io
import sys
import threading
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
        self._thread = threading.get_ident()
        self.active = False

    def __enter__(self) -> OutputCapture:
        shell = self.shell
        self._thread = threading.get_ident()
        self._saved = saved = (sys.stdout, sys.stderr, sys.displayhook, shell.display_pub)
        sys.stdout = _Stream(self, "stdout", saved[0])
        sys.stderr = _Stream(self, "stderr", saved[1])
        sys.displayhook = _DisplayHook(self, saved[2])
        shell.display_pub = _Publisher(self, saved[3], shell=shell)
        self.active = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.active = False
        sys.stdout, sys.stderr, sys.displayhook, self.shell.display_pub = self._saved

    def is_mine(self) -> bool:
        """True on the capturing thread while the capture is open."""
        return self.active and threading.get_ident() == self._thread

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
        """Show a cell's last expression (``sys.displayhook`` on the capturing thread)."""
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


class _DisplayHook:
    """``sys.displayhook`` while capturing; other threads use the previous hook."""

    def __init__(self, capture: OutputCapture, fallback: Any) -> None:
        self._capture = capture
        self._fallback = fallback

    def __getattr__(self, name: str) -> Any:  # what the kernel asks of the real hook
        if "_fallback" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.__dict__["_fallback"], name)

    def __call__(self, value: Any) -> None:
        if self._capture.is_mine():
            self._capture.display_value(value)
        else:
            self._fallback(value)


class _Stream(io.TextIOBase):
    """``sys.stdout`` / ``sys.stderr`` while capturing; other threads write to the previous one."""

    def __init__(self, capture: OutputCapture, name: str, fallback: Any) -> None:
        super().__init__()
        self._capture = capture
        self._name = name
        self._fallback = fallback

    def __getattr__(self, name: str) -> Any:  # fileno(), buffer, ... of the real stream
        return getattr(self._fallback, name)

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        if not self._capture.is_mine():
            written: int = self._fallback.write(text)
            return written
        self._capture.write(self._name, str(text))
        return len(text)

    def flush(self) -> None:
        if not self._capture.is_mine():
            self._fallback.flush()


class _Publisher(DisplayPublisher):
    """``shell.display_pub`` while capturing: ``display()``, ``update_display()``, clear.

    The kernel uses its publisher from the main thread while a capture on another thread is
    open: ipykernel calls ``shell.display_pub.set_parent(msg)`` when the next execute request
    arrives, and raised ``AttributeError`` here before that request ran, which dropped it
    without a reply (the cell hung: example 05, a tracked cell re-running on the Redis
    follower thread while the next cell started). What this class does not define goes to
    the real publisher.
    """

    def __init__(self, capture: OutputCapture, fallback: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]  # traitlets' untyped init
        self._capture = capture
        self._fallback = fallback
        self._wait_clear = False

    def __getattr__(self, name: str) -> Any:  # set_parent, register_hook, ... of the real one
        fallback = self.__dict__.get("_fallback")
        if fallback is None:  # during traitlets' __init__, before _fallback exists
            raise AttributeError(name)
        return getattr(fallback, name)

    def publish(
        self,
        data: Any,
        metadata: Any = None,
        source: Any = None,
        *,
        transient: Any = None,
        update: Any = False,
        **kwargs: Any,
    ) -> None:
        if not self._capture.is_mine():
            # ipykernel's publish() has no ``source``: pass on only what the caller gave
            if source is not None:
                kwargs["source"] = source
            kwargs.update(transient=transient, update=update)
            self._fallback.publish(data, metadata, **kwargs)
            return
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
        if not self._capture.is_mine():
            self._fallback.clear_output(wait)
        elif wait:
            self._wait_clear = True
        else:
            self._capture.clear()
