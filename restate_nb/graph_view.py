"""``%restate status``: the tracked cells, derivations and tracked functions of a controller,
with their footprints and marks, as plain text and as Markdown with a Mermaid graph.

The graph has one node per tracked cell, ``%restate derive``, core derivation and tracked
function; an edge ``A -->|/y| B`` where A writes /y (or a path overlapping it) and B reads
it; paths read but written by none of them appear as inputs. Stale, failed and refused nodes
are coloured and say so in their label. JupyterLab 4 and Notebook 7 render a ```mermaid
block in Markdown output; other front ends show the plain text.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from restate.paths import related, to_parts

__all__ = ["status_markdown", "status_text"]

MARKS = {"stale": "⚠ stale", "failed": "✖ failed", "refused": "⛔ refused", "due": "… due"}


@dataclass
class _Node:
    label: str
    reads: list[str]
    writes: list[str]
    status: str
    note: str  # the reason, error or last run, for the text view


def _nodes(controller: Any, cells: Any, derivations: Any) -> list[_Node]:
    by_tracker = cells.by_tracker()
    derived = {d.tracker_id: d for d in derivations.by_dest.values()}
    nodes = []
    for info in controller.trackers():
        item = by_tracker.get(info.id) or derived.get(info.id)
        label = item.describe() if item is not None else f"tracked function {info.name}"
        nodes.append(
            _Node(label, _sorted(info.paths), _sorted(info.writes), info.status, _note(info))
        )
    for d in controller.derivations():
        note = d.reason or (f"{type(d.error).__name__}: {d.error}" if d.error else "")
        label = f"derivation {d.dest} <- {', '.join(map(str, d.sources))}"
        nodes.append(_Node(label, _sorted(d.sources), [str(d.dest)], d.status, note))
    return nodes


def _sorted(paths: Any) -> list[str]:
    return sorted(str(p) for p in paths)


def _note(info: Any) -> str:
    if info.status in ("stale", "due") and info.reason:
        return str(info.reason)
    if info.error is not None:
        return f"{type(info.error).__name__}: {info.error}".splitlines()[0]
    if info.why is None:
        return "never ran"
    stamp = time.strftime("%H:%M:%S", time.localtime(info.why.at))
    runs = f"{info.runs} run{'' if info.runs == 1 else 's'}"
    # why it ran is on the cell itself; here it would make the status depend on timing
    return f"last ran {stamp} ({runs})"


def status_text(controller: Any, cells: Any, derivations: Any) -> str:
    nodes = _nodes(controller, cells, derivations)
    n_cells = len(cells.cells)
    n_derived = len(derivations.by_dest) + len(controller.derivations())
    lines = [
        f"restate on {type(controller.backend).__name__}: {_count(n_cells, 'tracked cell')}, "
        f"{_count(n_derived, 'derivation')}"
    ]
    for node in nodes:
        mark = f"{MARKS[node.status]}: " if node.status in MARKS else ""
        writes = f"  writes {', '.join(node.writes)}" if node.writes else ""
        reads = ", ".join(node.reads) or "nothing"
        lines.append(f"  {node.label}  reads {reads}{writes}  {mark}{node.note}".rstrip())
    return "\n".join(lines)


def status_markdown(controller: Any, cells: Any, derivations: Any) -> str:
    nodes = _nodes(controller, cells, derivations)
    text = status_text(controller, cells, derivations)
    if not nodes:
        return "```text\n" + text + "\n```"
    return "```mermaid\n" + _mermaid(nodes) + "\n```\n\n```text\n" + text + "\n```"


def _mermaid(nodes: list[_Node]) -> str:
    lines = ["flowchart LR"]
    for i, node in enumerate(nodes):
        mark = f"<br/>{MARKS[node.status]}" if node.status in MARKS else ""
        lines.append(f'  n{i}["{_escape(node.label)}{mark}"]')
        if node.status in MARKS:
            lines.append(f"  class n{i} {node.status}")
    inputs: dict[str, int] = {}
    for i, reader in enumerate(nodes):
        for path in reader.reads:
            writers = [j for j, w in enumerate(nodes) if j != i and _writes(w, path)]
            for j in writers:
                lines.append(f'  n{j} -->|"{_escape(path)}"| n{i}')
            if not writers:
                k = inputs.setdefault(path, len(inputs))
                lines.append(f'  p{k}(["{_escape(path)}"]) --> n{i}')
    lines += [
        "  classDef stale fill:#fff3cd,stroke:#b58900",
        "  classDef due fill:#eef,stroke:#668",
        "  classDef failed fill:#f8d7da,stroke:#c0392b",
        "  classDef refused fill:#f8d7da,stroke:#c0392b,stroke-dasharray: 4 2",
    ]
    return "\n".join(lines)


def _writes(node: _Node, path: str) -> bool:
    parts = to_parts(path)
    return any(related(to_parts(w), parts) for w in node.writes)


def _escape(text: str) -> str:
    # Mermaid's own entity codes: quotes and angle brackets inside a quoted label
    return text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
