"""No function in the thin rooms is longer than one screen: an asset, sensor or route is
a short builder around one call, its metadata built in ``defs/metadata.py``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "modelops"
MAX_FUNCTION_LINES = 60
"""Counted from the ``def`` line to the function's last line (a nested function counts
in the one that holds it, and on its own)."""
ROOMS = ["defs", "lifecycle", "serving"]
"""The rooms held to it (packages under ``modelops/``)."""


def long_functions(room: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """``path:line name (N lines)`` of every function in ``room`` over ``limit`` lines."""
    found = []
    for path in sorted(room.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > limit:
                    where = path.relative_to(room.parent)
                    found.append(f"{where}:{node.lineno} {node.name} ({lines} lines)")
    return found


@pytest.mark.parametrize("room", ROOMS)
def test_no_function_is_longer_than_the_limit(room):
    assert (PACKAGE / room).is_dir(), room
    assert long_functions(PACKAGE / room) == []


def test_the_walk_finds_a_long_function(tmp_path):
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "m.py").write_text(f"def short():\n    pass\n\n\ndef long():\n{body}")
    assert [f.split(" ", 1)[1] for f in long_functions(tmp_path)] == [
        f"long ({MAX_FUNCTION_LINES + 1} lines)"
    ]
