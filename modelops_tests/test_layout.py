"""The package map of docs/concepts.md, enforced: which room may import which, no import
circles between modules, no private name imported from another module, Dagster only in the
wiring, S3 clients only in the stores, and modules small enough to read in one sitting."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "modelops"

# room -> the rooms it may import (itself always). Mirrors docs/concepts.md.
ALLOWED = {
    "config": set(),
    "domain": {"config"},
    "ml": {"domain", "config"},
    "stores": {"domain", "config"},
    "monitoring": {"stores", "ml", "domain", "config"},
    "lifecycle": {"monitoring", "stores", "ml", "domain", "config"},
    "serving": {"lifecycle", "monitoring", "stores", "ml", "domain", "config"},
    "defs": {"serving", "lifecycle", "monitoring", "stores", "ml", "domain", "config"},
    "demo": {"defs", "serving", "lifecycle", "monitoring", "stores", "ml", "domain", "config"},
    "cli": {
        "demo",
        "defs",
        "serving",
        "lifecycle",
        "monitoring",
        "stores",
        "ml",
        "domain",
        "config",
    },
}
DAGSTER_ROOMS = {"defs", "demo", "cli"}
S3_ROOM = "stores"
S3_LIBRARIES = {"boto3", "botocore"}
# Modules at the package root: the version and the Dagster entry point.
TOP_LEVEL = {"modelops", "modelops.definitions"}
MAX_LINES = 400
SIZE_REASON = "Longer than 400 lines because"


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if "migrations" in parts:  # alembic scripts, run by alembic only
            continue
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and module not in TOP_LEVEL else None


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module, names, line) for every import in the file, lazy ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [a.name for a in node.names], node.lineno))
    return found


def _target(module: str, names: list[str]) -> list[str]:
    """The package modules an import statement loads."""
    targets = []
    for name in names:
        if f"{module}.{name}" in MODULES:
            targets.append(f"{module}.{name}")
    if module in MODULES and len(targets) < len(names) or not names:
        targets.append(module)
    return [t for t in targets if t in MODULES]


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in MODULES.items():
        for imported, names, _ in _imports(path):
            if imported == "modelops" or imported.startswith("modelops."):
                graph[module].update(t for t in _target(imported, names) if t != module)
    return graph


def test_every_module_sits_in_a_known_room():
    rooms = {_room(m) for m in MODULES} - {None}
    assert rooms == set(ALLOWED), f"rooms on disk {sorted(rooms)} vs the map {sorted(ALLOWED)}"


def test_rooms_import_only_the_rooms_below_them():
    bad = []
    for module, path in MODULES.items():
        room = _room(module)
        if room is None:
            continue
        for imported, names, line in _imports(path):
            if not imported.startswith("modelops."):
                continue
            for target in _target(imported, names) or [imported]:
                other = _room(target)
                if other and other != room and other not in ALLOWED[room]:
                    where = path.relative_to(PACKAGE.parent)
                    bad.append(f"{where}:{line}: {room} imports {target}")
    assert not bad, "\n".join(bad)


def test_only_the_wiring_imports_dagster():
    bad = [
        f"{path.relative_to(PACKAGE.parent)}:{line}"
        for module, path in MODULES.items()
        if _room(module) not in DAGSTER_ROOMS and module not in TOP_LEVEL
        for imported, _, line in _imports(path)
        if imported == "dagster" or imported.startswith(("dagster.", "dagster_"))
    ]
    assert not bad, "Dagster imported outside defs/, demo/, cli/: " + ", ".join(bad)


def test_only_the_stores_import_boto3():
    """S3 clients are built in ``stores/s3.py``; the rooms above call the stores' reads and
    hand them down (``lifecycle`` passes them to ``domain`` and ``ml``)."""
    bad = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {imported}"
        for module, path in MODULES.items()
        if _room(module) != S3_ROOM
        for imported, _, line in _imports(path)
        if imported.split(".")[0] in S3_LIBRARIES
    ]
    assert not bad, "boto3 imported outside stores/: " + ", ".join(bad)


def test_no_import_circles_between_modules():
    graph = _graph()
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(MODULES):
        if module not in state:
            visit(module)
    assert not cycles, "\n".join(cycles)


def test_no_private_name_is_imported_from_another_module():
    bad = []
    for path in MODULES.values():
        for imported, names, line in _imports(path):
            if not imported.startswith("modelops."):
                continue
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private:
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {private} from {imported}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_readable_in_one_sitting(module):
    text = MODULES[module].read_text(encoding="utf-8")
    lines = text.count("\n")
    if lines > MAX_LINES:
        assert SIZE_REASON in text[:2000], (
            f"{MODULES[module]} has {lines} lines: split it along its seams, or say at its "
            f"top why not ('{SIZE_REASON} ...')"
        )


def test_no_test_module_imports_another():
    tests = Path(__file__).resolve().parent
    bad = []
    for path in tests.rglob("*.py"):
        for imported, names, line in _imports(path):
            leaf = imported.rsplit(".", 1)[-1]
            modules = [leaf, *(n for n in names if imported.startswith("modelops_tests"))]
            if any(m.startswith("test_") or m == "conftest" for m in modules):
                bad.append(f"{path.relative_to(tests)}:{line}: {imported} {names}")
    assert not bad, "\n".join(bad)
