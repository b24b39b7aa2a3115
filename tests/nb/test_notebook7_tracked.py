"""Tracked cells in a real Notebook 7 (``jupyter notebook``) driven by Debian's chromium: cells
are run from the page with Shift+Enter, the re-run's output replaces the tracked cell's own
output, never a writing cell's, also for a write made by a background thread later."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import (  # the browser helper's fixtures, reused
    browser_context,
    cell_output_text,
    notebook7,
    open_notebook,
    wait_cell_output_shows,
)

pytestmark = pytest.mark.browser
__all__ = ["browser_context", "notebook7"]

CELLS = [
    '%load_ext restate_nb\nstate["/a"] = 1\nprint("setup ran")',
    '%%restate track\nprint("a is", state["/a"])',
    'state["/a"] = 5\nprint("wrote 5")',
    "import threading\n"
    'threading.Timer(0.3, state.__setitem__, ("/a", 9)).start()\n'
    'print("timer set")',
]
TRACKED = 1


def run_next_cells(page: Any, count: int) -> None:
    """Run ``count`` cells from the selected one on, as a person would: Shift+Enter each."""
    for _ in range(count):
        page.keyboard.press("Shift+Enter")


def tracked_output_is(page: Any, value: int) -> None:
    """The tracked cell shows exactly one line, for ``value``; no other cell shows it."""
    wait_cell_output_shows(page, TRACKED, f"a is {value}", timeout_ms=10_000)
    shown = cell_output_text(page, TRACKED).strip().splitlines()
    assert shown[-1] == f"a is {value}"  # under the status line of a re-run
    assert len(shown) == 1 or shown[0].startswith("↻ ran because /a changed")
    others = [cell_output_text(page, i) for i in range(len(CELLS)) if i != TRACKED]
    assert not [text for text in others if "a is" in text], others


def test_tracked_cell_output_is_replaced_in_place_in_notebook7(
    notebook7: Any, browser_context: Any
) -> None:
    name = notebook7.write_notebook("tracked7.ipynb", CELLS)
    page = open_notebook(browser_context, notebook7, name)
    try:
        assert "/notebooks/" in page.url  # the Notebook 7 front end, not JupyterLab
        page.locator(".jp-Notebook .jp-Cell .jp-InputPrompt").first.click()
        run_next_cells(page, 2)  # setup, tracked
        tracked_output_is(page, 1)

        run_next_cells(page, 1)  # a later cell writes
        wait_cell_output_shows(page, 2, "wrote 5")
        tracked_output_is(page, 5)

        run_next_cells(page, 1)  # a thread writes 0.3 s after every execution finished
        wait_cell_output_shows(page, 3, "timer set")
        tracked_output_is(page, 9)
    finally:
        page.close()
