"""Servers the suite starts never outlive it, however pytest ends.

A pytest killed by SIGTERM (a CI timeout, ``kill``) skips fixture teardown, and one killed
by SIGKILL runs nothing at all, so the redis-servers and Jupyter servers it started would
keep running. Two defences:

- ``stop_on_sigterm()`` (``tests/conftest.py`` installs it for the session): SIGTERM raises
  ``Terminated``, a KeyboardInterrupt, which pytest treats as Ctrl-C: it stops the session
  and still runs the fixtures' finalizers, stopping their servers by pid as usual; the
  session then exits with 128 + 15 (``exit_status``). A KeyboardInterrupt, unlike
  ``pytest.exit``'s ``Exit`` (an ``Exception``), is not swallowed by code under test that
  catches ``Exception``.
- ``die_with_parent(sig)``: a ``preexec_fn`` for ``subprocess.Popen`` asking Linux
  (``prctl(PR_SET_PDEATHSIG)``) to send ``sig`` to the server when the thread that started
  it dies, SIGKILL of pytest included. Fixtures start servers from pytest's main thread, so
  that is when pytest ends. Elsewhere (no ``prctl``) it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

__all__ = ["Terminated", "die_with_parent", "exit_status", "stop_on_sigterm"]

_PR_SET_PDEATHSIG = 1


def _prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()  # looked up before any fork: the child only calls it


def die_with_parent(sig: int = signal.SIGKILL) -> Callable[[], None] | None:
    """A ``preexec_fn`` making the child get ``sig`` when its parent dies (None off Linux)."""
    if _PRCTL is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        _PRCTL(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request: act on it now
            os.kill(os.getpid(), sig)

    return preexec


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: the session stops as for Ctrl-C, through teardown."""


_RECEIVED: list[int] = []


def _terminated(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends it at once
    _RECEIVED.append(signum)
    raise Terminated("pytest received SIGTERM: stopping; the fixtures stop their servers")


def exit_status(status: int) -> int:
    """128 + the signal when SIGTERM stopped the session, else ``status``."""
    return 128 + _RECEIVED[0] if _RECEIVED else status


def stop_on_sigterm() -> Callable[[], None]:
    """Make SIGTERM end the session with teardown; returns what puts the old handler back."""
    previous = signal.signal(signal.SIGTERM, _terminated)
    return lambda: signal.signal(signal.SIGTERM, previous)
