"""The child-process helper of the tests (tests/children.py) keeps its deadlines."""

from __future__ import annotations

import pytest

from tests.children import Child, run_together

SILENT = "import time; time.sleep(600)"


def test_a_child_that_prints_nothing_fails_the_wait_by_its_deadline_and_is_killed() -> None:
    with Child.script(SILENT) as child:
        with pytest.raises(pytest.fail.Exception, match=r"child -c \.\.\. printed nothing for"):
            child.read_line(timeout=0.2)
        assert child.poll() is None  # still running: only the wait gave up
    assert child.poll() == -9  # leaving the block killed it


def test_a_child_that_exits_instead_of_printing_says_with_which_code() -> None:
    child = Child.script("import sys; sys.exit(3)")
    with child, pytest.raises(pytest.fail.Exception, match="exited with 3 instead of printing"):
        child.expect("ready")


def test_a_child_that_outlives_its_wait_is_killed_and_named() -> None:
    child = Child.script(SILENT)
    with pytest.raises(pytest.fail.Exception, match=r"did not exit within 0\.2 s"):
        child.wait(0.2)
    assert child.poll() == -9


def test_children_run_together_each_see_the_go_line_and_a_failing_one_is_reported() -> None:
    echo = "import sys; print('ready', flush=True); assert sys.stdin.readline() == 'go\\n'"
    run_together(echo, [], 3, timeout=60)
    with pytest.raises(AssertionError, match="failed"):
        run_together(echo + "; sys.exit(1)", [], 2, timeout=60)
