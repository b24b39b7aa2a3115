"""The scheduler's unhappy paths in a real JupyterLab driven by Debian's chromium, read from
the page: a loop between two cells is refused and the state stays bounded; a failing derive
shows its traceback at its own cell while the writer's cell gets one line; a dependent shows
why it is stale, and a re-run says why it ran; ``%restate status`` renders a Mermaid graph."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import (
    browser_context,
    cell_output_text,
    jupyterlab,
    open_notebook,
    run_all_cells,
    wait_cell_output_shows,
)

pytestmark = pytest.mark.browser
__all__ = ["browser_context", "jupyterlab"]

CELLS = [
    '%load_ext restate_nb\nstate["/x"] = 0\nstate["/num"] = 6\nstate["/den"] = 3',  # 0
    '%%restate track\nstate["/y"] = state["/x"] + 1',  # 1  In[2]
    '%%restate track\nstate["/x"] = state["/y"] + 1',  # 2  In[3]
    'print("bounded:", state["/x"], state["/y"])',  # 3
    '%restate derive /ratio = state["/num"] / state["/den"]',  # 4
    '%%restate track\nprint("ratio is", state["/ratio"])',  # 5
    'state["/den"] = 0\nprint("writer done")',  # 6  In[7]
    "%restate status",  # 7
]


def test_loops_failures_and_why_lines_read_right_in_jupyterlab(
    jupyterlab: Any, browser_context: Any
) -> None:
    name = jupyterlab.write_notebook("scheduler.ipynb", CELLS)
    page = open_notebook(browser_context, jupyterlab, name)
    try:
        run_all_cells(page)
        chain = "cell [3] → /x → cell [2] → /y → cell [3]"
        wait_cell_output_shows(page, 2, f"CycleError: a loop: {chain}")
        wait_cell_output_shows(page, 1, f"CycleError: a loop: {chain}")
        wait_cell_output_shows(page, 3, "bounded: 2 1")

        wait_cell_output_shows(page, 6, "writer done")
        wait_cell_output_shows(page, 4, "ZeroDivisionError")
        wait_cell_output_shows(page, 5, "⚠ stale: /ratio failed in derive /ratio")
        writer = cell_output_text(page, 6)
        assert "restate: derive /ratio failed (ZeroDivisionError: division by zero)" in writer
        assert "Traceback" not in writer and "ZeroDivisionError  " not in writer
        derive = cell_output_text(page, 4)
        assert 'state["/num"] / state["/den"]' in derive and "restate_nb" not in derive
        assert "ratio is 2.0" in cell_output_text(page, 5)  # the old output stays

        # the Mermaid graph is rendered (its node labels appear; no ``` fence is left)
        wait_cell_output_shows(page, 7, "derive /ratio")
        status = page.locator(".jp-Notebook .jp-Cell").nth(7)
        page.wait_for_function(
            """() => { const c = document.querySelectorAll('.jp-Notebook .jp-Cell')[7];
                       return !!c && !!c.querySelector('.jp-RenderedMermaid img'); }""",
            timeout=20_000,
        )
        text = cell_output_text(page, 7)
        assert "```mermaid" not in text and "Syntax error" not in text
        assert status.locator(".jp-RenderedMermaid.jp-mod-warning").count() == 0  # it parsed

        # fixing the input: the dependent re-runs and says why
        page.evaluate(
            "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
            ".requestExecute({code: 'state[\"/den\"] = 4'})"
        )
        wait_cell_output_shows(page, 5, "ratio is 1.5")
        wait_cell_output_shows(page, 5, "↻ ran because /ratio changed (derive /ratio,")
    finally:
        page.close()
