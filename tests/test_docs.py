"""docs/ stays true: its Python examples run, its links resolve, and every section of
docs/semantics.md that the code cites exists.

A ```python block in docs/ must run as written, alone; an example that needs a server (a
Redis URL) or a notebook is fenced ```py or ```ipython instead and is only read."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((REPO_ROOT / "docs").glob("*.md"))
EXAMPLES = [
    (doc.name, index, block)
    for doc in DOCS
    for index, block in enumerate(re.findall(r"```python\n(.*?)```", doc.read_text(), re.S))
]


def anchors_of(markdown: Path) -> set[str]:
    """Explicit ``<a id>`` anchors and GitHub's heading slugs."""
    text = markdown.read_text()
    ids = set(re.findall(r'<a id="([^"]+)"></a>', text))
    for heading in re.findall(r"^#+ (.+)$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        ids.add(slug)
    return ids


@pytest.mark.parametrize(("doc", "index", "block"), EXAMPLES, ids=lambda v: str(v)[:20])
def test_every_python_example_in_docs_runs_as_written(doc, index, block, tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", block], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert result.returncode == 0, f"docs/{doc}, python block {index}:\n{result.stderr}"


def test_every_relative_link_in_docs_and_the_readme_leads_somewhere_that_exists():
    broken = []
    for page in [*DOCS, REPO_ROOT / "README.md", REPO_ROOT / "CHANGELOG.md"]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if "://" in target:
                continue
            file, _, anchor = target.partition("#")
            path = (page.parent / file).resolve() if file else page
            if not path.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and path.suffix == ".md" and anchor not in anchors_of(path):
                broken.append(f"{page.name}: {target} (no such section)")
    assert not broken, "\n".join(broken)


def test_every_semantics_section_the_code_cites_exists():
    anchors = anchors_of(REPO_ROOT / "docs" / "semantics.md")
    cited = {
        (source.relative_to(REPO_ROOT), anchor)
        for package in ("restate", "restate_nb")
        for source in (REPO_ROOT / package).rglob("*.py")
        for anchor in re.findall(r"docs/semantics\.md#([\w-]+)", source.read_text())
    }
    missing = sorted(f"{path}: #{anchor}" for path, anchor in cited if anchor not in anchors)
    assert not missing, missing
