"""The docs follow the code: every dotted ``modelops.x.y`` name and every ``modelops/...``
or ``modelops_tests/...`` path that README.md and docs/ mention exists."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [
    REPO / "README.md",
    *sorted((REPO / "docs").rglob("*.md")),
    REPO / "benchmarks" / "README.md",
]
DOTTED = re.compile(r"(?<![\w./-])modelops(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
# Paths into the package or the suite (not run tags such as ``modelops/reason``).
PATH = re.compile(
    r"(?<![\w./-])(modelops(?:_tests)?/(?:[a-z_]+/)*[A-Za-z0-9_]+\.py"
    r"|modelops_tests/[a-z_]+/|modelops/[a-z_]+/)"
)


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(REPO)) for d in DOCS])
def test_named_modules_and_paths_exist(doc):
    text = doc.read_text(encoding="utf-8")
    names = {n for n in DOTTED.findall(text) if n != "modelops.db"}  # the SQLite file
    missing = sorted(name for name in names if not _resolves(name))
    for path in PATH.findall(text):
        target = path
        if not (REPO / target).exists():
            missing.append(path)
    assert not missing, f"{doc.relative_to(REPO)} names what does not exist: {missing}"
