"""The README's examples run as written, and every file and command it names exists."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
README = (REPO_ROOT / "README.md").read_text()
sys.path.insert(0, str(REPO_ROOT / "scripts"))

from headless import execute, report  # noqa: E402


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


PYTHON_BLOCKS = code_blocks("python")


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_readme_python_blocks_run_as_written(index, tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", PYTHON_BLOCKS[index]],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_readme_library_quick_start_prints_what_it_promises(tmp_path):
    quick_start = next(block for block in PYTHON_BLOCKS if "on_users_change" in block)
    result = subprocess.run(
        [sys.executable, "-c", quick_start], capture_output=True, text=True, cwd=tmp_path
    )
    users = "users are now"
    assert result.stdout.splitlines() == [
        f"/users/1 changed; {users} {{'1': {{'name': 'Alice', 'role': 'admin'}}}}",
        f"/users/2 changed; {users} {{'1': {{'name': 'Alice', 'role': 'admin'}}, "
        "'2': {'name': 'Bob', 'role': 'user'}}",
        f"/users/2/role changed; {users} {{'1': {{'name': 'Alice', 'role': 'admin'}}, "
        "'2': {'name': 'Bob', 'role': 'admin'}}",
        # the batch: two writes below /users, one event about /users itself, as it ended
        f"/users changed; {users} {{'2': {{'name': 'Bob', 'role': 'admin'}}, "
        "'3': {'name': 'Carol', 'role': 'user'}}",
        "Bob is admin",  # track() runs the function at once
        f"/users/2/role changed; {users} {{'2': {{'name': 'Bob', 'role': 'user'}}, "
        "'3': {'name': 'Carol', 'role': 'user'}}",
        "Bob is user",  # ... and again after subscribers, when what it read changed
    ]


def test_readme_notebook_quick_start_recalculates_the_tracked_cell(tmp_path):
    cells = code_blocks("ipython")
    assert len(cells) == 3
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(cell.strip()) for cell in cells]
    nb.cells.append(nbformat.v4.new_code_cell('print("left is", state["/budget/left"])'))
    path = tmp_path / "readme.ipynb"
    nbformat.write(nb, path)

    executed, failure = execute(path, timeout=60)
    lines, problems = report(executed)

    assert failure is None and not problems, failure or problems
    tracked = lines.index("[2] %%restate track")
    why, *shown = lines[tracked + 1 : tracked + 4]
    # the re-run says why (the derivation it reads changed), then shows its new output
    assert why.startswith("    ↻ ran because /budget/left changed (derive /budget/left, ")
    assert shown == ["    Output widget:", "        left to spend: 1250"]
    assert "    left is 1250" in lines


def test_every_file_the_readme_links_or_names_exists():
    linked = re.findall(r"\]\(([^)#]+)\)", README)
    named = re.findall(
        r"`((?:scripts|examples|binder|benchmarks|docs|tests|\.ci)/[\w./-]+)`", README
    )
    missing = [p for p in {*linked, *named} if "://" not in p and not (REPO_ROOT / p).exists()]
    assert linked and not missing, missing


def test_the_readme_commands_are_the_executable_scripts():
    commands = {line.split()[0] for line in code_blocks("bash")[0].splitlines() if line.strip()}
    assert commands == {"scripts/run", "scripts/test"}
    for command in commands:
        assert (REPO_ROOT / command).stat().st_mode & 0o111
