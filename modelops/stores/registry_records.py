"""What the registry stores, as the rest of the platform sees it: the statuses, alias
names and audit actions (the schema's check constraints use them too), and the frozen
records :class:`~modelops.stores.registry.Registry` returns."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

CANDIDATE = "candidate"
CHAMPION = "champion"
RETIRED = "retired"
REJECTED = "rejected"
STATUSES = (CANDIDATE, CHAMPION, RETIRED, REJECTED)
SERVING = "serving"
ALIASES = (CHAMPION, CANDIDATE, SERVING)
RECIPE_SCOPE = ""
"""The ``taxonomy_version`` of recipe-level alias rows (``serving``)."""
ACTIONS = ("register", "promote", "rollback", "evaluate", "reject")

TAXONOMY_VERSION = re.compile(r"v([0-9]+)")
"""As modelops.config.taxonomy.VERSION_PATTERN: versions are compared by their number."""


def taxonomy_version_key(version: str) -> tuple[int, str]:
    """Sort key of a taxonomy version: by number, so ``v2 < v10``.

    Anything not shaped ``vN`` (only possible in rows older than that rule) sorts
    first, by its text.
    """
    match = TAXONOMY_VERSION.fullmatch(version)
    return (int(match.group(1)), "") if match else (-1, version)


def failed_checks(gate: dict) -> list[str]:
    """Names of the failed checks in a gate decision (a list or a mapping of checks); a
    skipped check (``"skipped": true``, it compared nothing) is not a failure."""
    checks = gate.get("checks") or []
    items: list[tuple[str, Any]]
    if isinstance(checks, dict):
        items = [(str(name), check) for name, check in checks.items()]
    else:
        items = [
            (str(c.get("name") or c.get("check") or i) if isinstance(c, dict) else str(i), c)
            for i, c in enumerate(checks)
        ]
    failed = []
    for name, check in items:
        ok = check.get("passed") if isinstance(check, dict) else check
        skipped = isinstance(check, dict) and check.get("skipped") is True
        if ok is False and not skipped:
            failed.append(name)
    return failed


@dataclass(frozen=True)
class AdapterVersion:
    """One registered adapter: where its weights are, what made them, how it scored."""

    id: int
    recipe: str
    taxonomy_version: str
    base_model: str
    """Catalog reference, e.g. ``minilm@2024-01``."""
    base_model_sha256: str
    dataset_fingerprint: str
    recipe_fingerprint: str
    artifact_uri: str
    artifact_sha256: str
    weights_sha256: str
    lineage: dict
    metrics: dict
    gate: dict | None
    """The last gate decision (``passed`` and ``checks``), or None before evaluation."""
    status: str
    """``candidate``, ``champion``, ``retired`` or ``rejected``."""
    created_at: datetime
    created_by: str

    def to_dict(self) -> dict:
        """A JSON-serialisable dict (times as ISO 8601 strings)."""
        d = asdict(self)
        d["created_at"] = self.created_at.isoformat()
        return d


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit log: who did what to which adapter, when and why."""

    id: int
    at: datetime
    who: str
    action: str
    """``register``, ``promote``, ``rollback``, ``evaluate`` or ``reject``."""
    recipe: str
    adapter_id: int | None
    previous_adapter_id: int | None
    """For promote and rollback: the champion that was replaced."""
    why: str
    evidence: dict

    def to_dict(self) -> dict:
        """A JSON-serialisable dict (times as ISO 8601 strings)."""
        d = asdict(self)
        d["at"] = self.at.isoformat()
        return d
