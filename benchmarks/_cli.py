"""Command-line options of the benchmarks: ``--help`` prints the module's docstring and the
options, and an unknown option stops with an error instead of running the whole benchmark."""

from __future__ import annotations

import argparse
import sys

__all__ = ["options"]


def options(
    doc: str | None, flags: dict[str, str], argv: list[str] | None = None
) -> argparse.Namespace:
    """Parse ``argv`` (default ``sys.argv[1:]``): each ``flags`` entry ``name: help`` is an
    ``--name`` switch (a ``name=N`` key takes an integer)."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for name, text in flags.items():
        if name.endswith("=N"):
            parser.add_argument("--" + name[:-2], type=int, metavar="N", help=text)
        else:
            parser.add_argument("--" + name, action="store_true", help=text)
    return parser.parse_args(sys.argv[1:] if argv is None else argv)
