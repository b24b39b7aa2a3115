"""Tracked cells in a real JupyterLab driven by Debian's chromium: the re-run's output
replaces the tracked cell's own output on the page, never the writing cell's, also for a
write made by a background thread after every cell finished."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import (  # the browser helper's fixtures, reused
    browser_context,
    cell_output_text,
    jupyterlab,
    kernel_run,
    open_notebook,
    run_all_cells,
    wait_cell_output_shows,
)

pytestmark = pytest.mark.browser
__all__ = ["browser_context", "jupyterlab"]


def test_tracked_cell_output_is_replaced_in_place_in_jupyterlab(
    jupyterlab: Any, browser_context: Any
) -> None:
    name = jupyterlab.write_notebook(
        "tracked.ipynb",
        [
            '%load_ext restate_nb\nstate["/a"] = 1',
            '%%restate track\nprint("total is", state["/a"] * 10)',
            'state["/a"] = 5\nprint("setter ran")',
        ],
    )
    page = open_notebook(browser_context, jupyterlab, name)
    client = None
    try:
        run_all_cells(page)
        wait_cell_output_shows(page, 1, "total is 50")
        wait_cell_output_shows(page, 2, "setter ran")
        assert "total is" not in cell_output_text(page, 2)
        assert cell_output_text(page, 1).count("total is") == 1

        client = jupyterlab.kernel_client(name)
        kernel_run(client, 'state["/a"] = 7')  # another execution writes
        wait_cell_output_shows(page, 1, "total is 70")
        code = "import threading\nthreading.Timer(0.3, state.__setitem__, ('/a', 9)).start()"
        kernel_run(client, code)  # a thread writes after every execution finished
        wait_cell_output_shows(page, 1, "total is 90")
        assert cell_output_text(page, 1).count("total is") == 1
        assert "total is" not in cell_output_text(page, 0) + cell_output_text(page, 2)
    finally:
        if client is not None:
            client.stop_channels()
        page.close()
