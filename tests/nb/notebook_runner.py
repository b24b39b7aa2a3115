"""Execute a notebook with nbclient against a real ipykernel, and read what a person would see.

The kernel is this interpreter (``sys.executable``) with this checkout first on
``PYTHONPATH``, declared as a kernelspec in a temporary ``JUPYTER_PATH``: it works from a
fresh clone whether or not the package is installed.
"""

from __future__ import annotations

import html
import json
import re
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.util import ensure_async, run_sync

REPO = Path(__file__).resolve().parents[2]
KERNEL_NAME = "restate-nb-test"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

Action = Callable[["Run"], None]


def write_kernelspec(jupyter_path: Path) -> None:
    """A kernelspec named KERNEL_NAME running this Python with the checkout importable."""
    spec_dir = jupyter_path / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "restate test kernel",
        "language": "python",
        "env": {"PYTHONPATH": str(REPO)},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))


class Run:
    """An executed notebook: its cells plus the widget state nbclient kept."""

    def __init__(self, client: NotebookClient) -> None:
        self.client = client
        self.nb = client.nb

    def widget_state(self, model_id: str) -> dict[str, Any]:
        return self.client.widget_state.get(model_id, {})

    def seen(self, index: int) -> str:
        """The text a person sees under cell ``index`` (Output widget contents included)."""
        return "".join(self._render(o) for o in self.nb.cells[index].outputs)

    def widget_ids(self, index: int) -> list[str]:
        return [
            o["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
            for o in self.nb.cells[index].outputs
            if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
        ]

    def _render(self, output: dict[str, Any]) -> str:
        kind = output["output_type"]
        if kind == "stream":
            return output["text"]
        if kind == "error":
            return _ANSI.sub("", "\n".join(output["traceback"])) + "\n"
        data = output.get("data", {})
        view = data.get("application/vnd.jupyter.widget-view+json")
        if view is not None:
            return self._render_widget(view["model_id"])
        return data.get("text/plain", "") + "\n"

    def _render_widget(self, model_id: str) -> str:
        state = self.widget_state(model_id)
        if state.get("_model_name") == "OutputModel":
            return "".join(self._render(o) for o in state.get("outputs", ()))
        if state.get("_model_name") in ("VBoxModel", "HBoxModel", "BoxModel"):
            ids = [c.removeprefix("IPY_MODEL_") for c in state.get("children", ())]
            return "".join(self._render_widget(i) for i in ids)
        if state.get("_model_name") == "HTMLModel":  # as a person reads it: no tags
            text = html.unescape(re.sub(r"<[^>]*>", "", state.get("value") or ""))
            return text + "\n" if text else ""
        return f"<{state.get('_model_name', 'widget')} value={state.get('value')!r}>\n"

    def send_widget_update(self, model_id: str, state: dict[str, Any]) -> None:
        """Send what a front end sends when a user changes a widget, then collect the
        kernel's reaction (comm messages update the stored widget state)."""
        kc = self.client.kc
        content = {"comm_id": model_id, "data": {"method": "update", "state": state}}
        content["data"]["buffer_paths"] = []
        msg = kc.session.msg("comm_msg", content)
        kc.shell_channel.send(msg)
        self._collect_until_idle(msg["header"]["msg_id"])

    def _collect_until_idle(self, parent_id: str, timeout: float = 30) -> None:
        while True:
            msg = run_sync(_next_message)(self.client.kc, timeout)
            if msg["parent_header"].get("msg_id") != parent_id:
                continue
            kind = msg["msg_type"]
            if kind.startswith("comm"):
                self.client.handle_comm_msg([], msg, -1)
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                return


async def _next_message(kc: Any, timeout: float) -> dict[str, Any]:
    return await ensure_async(kc.get_iopub_msg(timeout=timeout))


def run_notebook(cells: list[str], workdir: Path, actions: dict[int, Action] | None = None) -> Run:
    """Execute ``cells`` (code) in order in a fresh kernel, running ``actions[i](run)``
    right after cell ``i``. Errors in cells are kept as outputs (allow_errors)."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src, id=uuid.uuid4().hex[:8]) for src in cells]
    client = NotebookClient(
        nb,
        kernel_name=KERNEL_NAME,
        store_widget_state=True,
        allow_errors=True,
        timeout=60,
        resources={"metadata": {"path": str(workdir)}},
    )
    run = Run(client)
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
            if actions and index in actions:
                actions[index](run)
        client.set_widgets_metadata()
    return run
