"""A capture open on another thread must not disturb the kernel running the next cell.

Tracked cells re-run on the writer's thread (a Redis follower, a widget callback) inside an
``OutputCapture``, which swaps ``shell.display_pub`` for the whole process. When the kernel
received the next execute request meanwhile, ipykernel's ``display_pub.set_parent`` raised
and the request was dropped without a reply: the cell hung (example 05, under load).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from queue import Empty
from typing import Any

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[2]
REPLY_DEADLINE = 60  # seconds; a dropped request never answers, a slow machine does

HOLD_A_CAPTURE = """
import threading
from IPython.display import display
from restate_nb.capture import OutputCapture
inside, release = threading.Event(), threading.Event()
def hold():
    with OutputCapture(get_ipython()) as capture:
        print("captured on the thread")
        inside.set()
        release.wait(60)
    held.extend(capture.outputs)
held = []
thread = threading.Thread(target=hold)
thread.start()
assert inside.wait(30), "the capturing thread did not start within 30 s"
"""


class Kernel:
    """A real ipykernel of this interpreter, with this checkout importable."""

    def __init__(self) -> None:
        specs = KernelSpecManager(kernel_dirs=[], ensure_native_kernel=True)
        self.km = KernelManager(kernel_name="python3", kernel_spec_manager=specs)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])}
        self.km.start_kernel(env=env)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=REPLY_DEADLINE)

    def run(self, code: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Execute ``code``: its reply content and its iopub messages (failing at the deadline)."""
        msg_id = self.kc.execute(code)
        reply = self._reply_to(msg_id, code)
        messages = []
        while True:
            msg = self.kc.get_iopub_msg(timeout=REPLY_DEADLINE)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return reply["content"], messages
            messages.append(msg)

    def _reply_to(self, msg_id: str, code: str) -> dict[str, Any]:
        while True:  # replies to earlier requests (kernel_info) may come first
            try:
                reply: dict[str, Any] = self.kc.get_shell_msg(timeout=REPLY_DEADLINE)
            except Empty:
                pytest.fail(f"the kernel did not answer {code!r} within {REPLY_DEADLINE} s")
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply

    def stop(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.fixture
def kernel() -> Iterator[Kernel]:
    started = Kernel()
    try:
        yield started
    finally:
        started.stop()


def streamed(messages: list[dict[str, Any]]) -> str:
    return "".join(m["content"]["text"] for m in messages if m["msg_type"] == "stream")


def test_a_cell_sent_while_another_thread_captures_runs_and_shows_its_own_output(kernel):
    reply, _ = kernel.run(HOLD_A_CAPTURE)
    assert reply["status"] == "ok", reply

    reply, messages = kernel.run("print('the next cell')\ndisplay('shown by the next cell')")

    assert reply["status"] == "ok", reply
    assert streamed(messages) == "the next cell\n"
    shown = [
        m["content"]["data"]["text/plain"] for m in messages if m["msg_type"] == "display_data"
    ]
    assert shown == ["'shown by the next cell'"]


def test_the_capturing_thread_keeps_only_its_own_output(kernel):
    kernel.run(HOLD_A_CAPTURE)
    kernel.run("print('the next cell')")

    reply, messages = kernel.run("release.set(); thread.join(30); print(held)")

    assert reply["status"] == "ok", reply
    out = streamed(messages)
    assert "captured on the thread" in out and "the next cell" not in out
