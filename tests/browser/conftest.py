"""Fixtures for browser tests: one Jupyter server per front end and one chromium per session.

JupyterLab (``jupyterlab``) or Notebook 7 (``notebook7``) runs from this checkout's virtualenv
on 127.0.0.1 with a token, temp config and runtime dirs, and ``PYTHONPATH`` pointing at the
checkout so its kernels import ``restate`` and ``restate_nb``. Playwright drives Debian's
``/usr/bin/chromium`` (never a downloaded one).
A second kernel client, attached through the kernel's connection file, runs code in the
notebook's kernel so tests can write state and read it back without touching the DOM.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.orphans import die_with_parent

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Per front end: the ``jupyter`` subcommand, its own options, and its notebook URL path.
FRONTENDS = {
    "lab": ("lab", ["--LabApp.extension_manager=readonly", "--LabApp.workspaces_dir={ws}"]),
    "notebook": ("notebook", ["--JupyterNotebookApp.workspaces_dir={ws}"]),
}


@dataclass
class JupyterServer:
    """A running Jupyter server (JupyterLab or Notebook 7 front end) started by the test session."""

    frontend: str
    url: str
    token: str
    root_dir: Path
    runtime_dir: Path
    log: Path

    def api(self, endpoint: str) -> Any:
        with urllib.request.urlopen(f"{self.url}/api/{endpoint}?token={self.token}") as r:
            return json.load(r)

    def write_notebook(self, name: str, cells: list[str]) -> str:
        nb = {
            "cells": [
                {
                    "cell_type": "code",
                    "execution_count": None,
                    "id": f"cell-{i}",
                    "metadata": {},
                    "outputs": [],
                    "source": src,
                }
                for i, src in enumerate(cells)
            ],
            "metadata": {
                "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
            },
            "nbformat": 4,
            "nbformat_minor": 5,
        }
        (self.root_dir / name).write_text(json.dumps(nb))
        return name

    def notebook_url(self, name: str) -> str:
        if self.frontend == "notebook":
            return f"{self.url}/notebooks/{name}?token={self.token}"
        return f"{self.url}/lab/tree/{name}?token={self.token}&reset"

    def kernel_client(self, notebook: str) -> Any:
        """A blocking client attached to the kernel of the open ``notebook``."""
        from jupyter_client import BlockingKernelClient

        sessions = [s for s in self.api("sessions") if s["path"].endswith(notebook)]
        assert sessions, f"no kernel session for {notebook}: {self.api('sessions')}"
        kernel_id = sessions[0]["kernel"]["id"]
        client = BlockingKernelClient(
            connection_file=str(self.runtime_dir / f"kernel-{kernel_id}.json")
        )
        client.load_connection_file()
        client.start_channels()
        client.wait_for_ready(timeout=10)
        return client


def _wait_ready(lab: JupyterServer, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = lab.log.read_text()
            raise RuntimeError(f"jupyter {lab.frontend} exited with {proc.returncode}:\n{log}")
        try:
            with urllib.request.urlopen(f"{lab.url}/api/status?token={lab.token}", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    log = lab.log.read_text()
    raise TimeoutError(f"jupyter {lab.frontend} did not answer in {timeout}s:\n{log}")


@contextmanager
def _running_jupyter(base: Path, frontend: str = "lab") -> Iterator[JupyterServer]:
    dirs = {name: base / name for name in ("root", "runtime", "config", "settings", "ws")}
    for d in dirs.values():
        d.mkdir()
    notif = dirs["settings"] / "@jupyterlab" / "apputils-extension"
    notif.mkdir(parents=True)
    (notif / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(
        os.environ,
        JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
        JUPYTER_CONFIG_DIR=str(dirs["config"]),
        JUPYTERLAB_SETTINGS_DIR=str(dirs["settings"]),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    subcommand, options = FRONTENDS[frontend]
    cmd = [
        sys.executable, "-m", "jupyter", subcommand, "--no-browser", "--ip=127.0.0.1",
        f"--port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={dirs['root']}", "--allow-root", "--expose-app-in-browser",
        *(option.format(ws=dirs["ws"]) for option in options),
    ]  # fmt: skip
    log = base / f"jupyter-{frontend}.log"
    url = f"http://127.0.0.1:{port}"
    lab = JupyterServer(frontend, url, token, dirs["root"], dirs["runtime"], log)
    with log.open("wb") as out:
        # SIGTERM when pytest dies, even by SIGKILL: the server then shuts its kernels down
        stop = die_with_parent(signal.SIGTERM)
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=base, preexec_fn=stop
        )
        try:
            _wait_ready(lab, proc)
            yield lab
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def _running_chromium(profile: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1200, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


# Other test folders import these fixtures by name, which makes pytest instantiate them once
# per defining module; one Playwright per process is all the sync API allows, so the running
# server and browser are shared by reference count.
_SHARED: dict[str, list[Any]] = {}


@contextmanager
def _shared(key: str, start: Callable[[], AbstractContextManager[Any]]) -> Iterator[Any]:
    entry = _SHARED.get(key)
    if entry is None:
        cm = start()
        entry = _SHARED[key] = [cm, cm.__enter__(), 0]
    entry[2] += 1
    try:
        yield entry[1]
    finally:
        entry[2] -= 1
        if entry[2] == 0:
            del _SHARED[key]
            entry[0].__exit__(None, None, None)


@pytest.fixture(scope="session")
def jupyterlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    start = partial(_running_jupyter, tmp_path_factory.mktemp("jupyterlab"), "lab")
    with _shared("jupyterlab", start) as lab:
        yield lab


@pytest.fixture(scope="session")
def notebook7(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    """A Jupyter server with the Notebook 7 front end (``/notebooks/NAME.ipynb``)."""
    start = partial(_running_jupyter, tmp_path_factory.mktemp("notebook7"), "notebook")
    with _shared("notebook7", start) as server:
        yield server


@pytest.fixture(scope="session")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    start = partial(_running_chromium, tmp_path_factory.mktemp("chromium-profile"))
    with _shared("chromium", start) as context:
        yield context


WAIT_KERNEL_IDLE = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const ctx = w && w.sessionContext;
  return !!(ctx && ctx.isReady && ctx.session && ctx.session.kernel
            && ctx.session.kernel.status === 'idle');
}"""


def open_notebook(context: Any, lab: JupyterServer, name: str) -> Any:
    """Open ``name`` in a new page and wait until its kernel is ready and idle."""
    page = context.new_page()
    page.goto(lab.notebook_url(name))
    page.wait_for_function(WAIT_KERNEL_IDLE, timeout=30_000)
    return page


CELL_OUTPUT_SHOWS = """([index, text]) => {
  const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[index];
  const area = cell && cell.querySelector('.jp-Cell-outputArea');
  return !!area && area.innerText.includes(text);
}"""


def cell_output_text(page: Any, index: int) -> str:
    """What the output area of the ``index``-th cell shows (Output widgets included)."""
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    return cell.locator(".jp-Cell-outputArea").inner_text()


def wait_cell_output_shows(page: Any, index: int, text: str, timeout_ms: int = 20_000) -> None:
    """Wait until the output area of the ``index``-th cell shows ``text``."""
    page.wait_for_function(CELL_OUTPUT_SHOWS, arg=[index, text], timeout=timeout_ms)


def run_all_cells(page: Any) -> None:
    # not awaited on purpose: awaiting the command's promise can hang
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")


def kernel_run(client: Any, code: str, timeout: float = 10.0) -> str:
    """Run ``code`` in the kernel and return its stdout; raise on an error."""
    out: list[str] = []
    errors: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            errors.append("\n".join(msg["content"]["traceback"]))

    client.execute_interactive(code, timeout=timeout, output_hook=hook)
    if errors:
        raise AssertionError(f"kernel error running {code!r}:\n{errors[0]}")
    return "".join(out)
