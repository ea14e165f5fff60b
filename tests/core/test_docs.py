"""The documentation says what the code does: links resolve, the hook table is the specs."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from arv_keepdocker_plugin import hookspecs

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


def relative_links(path: Path):
    for target, _anchor in LINK.findall(path.read_text()):
        if not re.match(r"^[a-z]+://", target):
            yield target


@pytest.mark.parametrize("page", [ROOT / "README.md"] + DOCS, ids=lambda p: p.name)
def test_relative_links_resolve(page):
    missing = [t for t in relative_links(page) if not (page.parent / t).exists()]
    assert missing == []


def test_readme_links_every_chapter_and_stays_short():
    readme = ROOT / "README.md"
    linked = {(ROOT / t).resolve() for t in relative_links(readme)}
    assert [p.name for p in DOCS if p.resolve() not in linked] == []
    assert len(readme.read_text().splitlines()) < 300


def documented_hooks():
    """``{name: (arguments, firstresult)}`` from the hook table of docs/plugins.md."""
    rows = re.findall(r"^\| `(keepdocker_\w+)\(([^)]*)\)` \| (\w+)",
                      (ROOT / "docs" / "plugins.md").read_text(), re.MULTILINE)
    return {name: ([a.strip() for a in args.split(",") if a.strip()], first == "yes")
            for name, args, first in rows}


def specified_hooks():
    specs = {}
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction):
        options = getattr(function, "arv_keepdocker_spec", None)
        if name.startswith("keepdocker_") and options is not None:
            specs[name] = (list(inspect.signature(function).parameters),
                           bool(options.get("firstresult")))
    return specs


def test_the_hook_table_is_the_hook_specifications():
    specs = specified_hooks()
    assert len(specs) == 8  # the table below must not compare two empty readings
    assert documented_hooks() == specs
