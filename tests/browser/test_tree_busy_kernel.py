"""StateTree in JupyterLab and Notebook 7 (chromium) while the kernel is busy in a long cell:
the first paint comes with the widget (no round trip), then the cell's writes arrive live."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import open_notebook, run_all_cells

pytestmark = pytest.mark.browser

SETUP = """\
%load_ext restate_nb
state["/count"] = 0
state["/label"] = "at display"
"""

# Waits for a file the test writes after it saw what it expects (a hand-off by events, with a
# deadline), so the whole exchange happens while this cell keeps the kernel busy.
LONG_CELL = """\
import pathlib, time
def wait_for(name, deadline=60):
    end = time.monotonic() + deadline
    while not pathlib.Path(name).exists():
        if time.monotonic() > end:
            raise TimeoutError(f"the test never wrote {name}")
        time.sleep(0.02)
wait_for("busy-painted")
state["/label"] = "while running"
for i in range(1, 4):
    state["/count"] = i
    wait_for(f"busy-seen-{i}")
print("long cell done")
"""

# The long cell is still running: its prompt shows [*] and it has not printed yet. (The
# kernel's status can flip to idle meanwhile -- control-channel requests publish their own
# busy/idle -- so the prompt is the reliable sign.)
LONG_CELL_RUNNING = """() => {
  const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[2];
  const prompt = cell.querySelector('.jp-InputPrompt').textContent;
  const out = cell.querySelector('.jp-Cell-outputArea').innerText;
  return prompt.includes('[*]') && !out.includes('long cell done');
}"""


def node_value(path: str) -> str:
    return f'.restate-tree .rs-node[data-path="{path}"] > .rs-row .rs-value'


def wait_value(page: Any, path: str, text: str, timeout: float = 10_000) -> None:
    page.wait_for_function(
        """([sel, text]) => document.querySelector(sel)?.textContent === text""",
        arg=[node_value(path), text],
        timeout=timeout,
    )


@pytest.mark.parametrize("frontend", ["jupyterlab", "notebook7"])
def test_the_tree_paints_and_follows_writes_while_the_kernel_is_busy(
    frontend: str, request: pytest.FixtureRequest, browser_context: Any
) -> None:
    jupyterlab = request.getfixturevalue(frontend)  # JupyterLab 4 or Notebook 7
    for stale in jupyterlab.root_dir.glob("busy-*"):
        stale.unlink()
    name = jupyterlab.write_notebook("busy_tree.ipynb", [SETUP, "%restate tree", LONG_CELL])
    page = open_notebook(browser_context, jupyterlab, name)
    run_all_cells(page)
    try:
        # the state at display time, painted while the long cell holds the kernel
        wait_value(page, "/label", '"at display"')
        wait_value(page, "/count", "0")
        assert page.evaluate(LONG_CELL_RUNNING)
        assert page.locator(".restate-tree .rs-status").inner_text() == ""
        paint = page.evaluate("() => document.querySelector('.restate-tree').dataset.firstPaintMs")
        print(f"\n{frontend}: first paint {paint} ms after the view was created, kernel busy")
        (jupyterlab.root_dir / "busy-painted").write_text("")
        # then each write of the running cell, live
        wait_value(page, "/label", '"while running"')
        for i in range(1, 4):
            wait_value(page, "/count", str(i))
            assert page.evaluate(LONG_CELL_RUNNING)
            (jupyterlab.root_dir / f"busy-seen-{i}").write_text("")
        page.wait_for_function(
            """() => document.querySelectorAll('.jp-Cell')[2]
                 ?.querySelector('.jp-Cell-outputArea')?.innerText.includes('long cell done')""",
            timeout=20_000,
        )
        # once the kernel is free the view is in step with it (its hello was answered)
        page.wait_for_function(
            "() => document.querySelector('.restate-tree')?.dataset.synced === 'true'",
            timeout=10_000,
        )
        wait_value(page, "/count", "3")
    finally:
        for marker in jupyterlab.root_dir.glob("busy-*"):
            marker.unlink()
        page.close()
