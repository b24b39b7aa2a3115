"""Re-execute the example notebooks in place so that their stored outputs are current.

Usage: ``python scripts/execute_examples.py [NOTEBOOK ...]`` (default: every examples/*.ipynb).
Runs each notebook from a clean slate with a real kernel (widget state stored, as JupyterLab
would save it) and writes it back; stops with exit status 1 at the first notebook that fails.
After editing an example, run this, then ``scripts/test examples`` to check it with nbval.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from headless import REPO_ROOT, execute, find_notebooks, report


def clear_outputs(nb: nbformat.NotebookNode) -> None:
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None


def execute_in_place(path: Path, timeout: int) -> bool:
    nb = nbformat.read(path, as_version=4)
    clear_outputs(nb)
    nbformat.write(nb, path)
    executed, failure = execute(path, timeout)
    problems = report(executed)[1]
    if failure or problems:
        print(f"FAILED {path.name}:\n{failure or chr(10).join(problems)}", file=sys.stderr)
        return False
    nbformat.write(executed, path)
    print(f"executed {path.name}")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, default=[REPO_ROOT / "examples"])
    parser.add_argument("--timeout", type=int, default=120, help="seconds allowed per cell")
    args = parser.parse_args(argv)
    for path in find_notebooks(args.paths):
        if not execute_in_place(path, args.timeout):
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
