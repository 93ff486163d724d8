"""The drift evidence of each recipe: the sequential tests' state accumulated for its
serving champion (``modelops.monitoring.evidence.EvidenceState`` as JSON), one row per
recipe in the platform database (table ``drift_evidence``, revision 0008).

A drift check loads the state, adds its window and saves the new one. Saves are
compare-and-set on ``version``: a save that expected the version it loaded stores nothing
when another check saved in between (so rows are never counted twice from two states),
and says so; each save is one transaction, so a state is never half-written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from modelops.config.errors import InputError
from modelops.stores.db.engine import Database
from modelops.stores.db.orm import DriftEvidenceRow

SUMMARY = {
    "adapter_id": int,
    "since": str,
    "first_id": int,
    "last_id": int,
    "rows": int,
    "windows": int,
}
"""The state's keys kept as columns beside the JSON, and their types."""


@dataclass(frozen=True)
class StoredEvidence:
    """A recipe's stored state and the version to hand back to :meth:`save`."""

    state: dict[str, Any]
    version: int


def _summary(state: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(state, dict):
        raise InputError("drift_evidence", "state", f"must be a dict, got {type(state).__name__}")
    out = {}
    for key, kind in SUMMARY.items():
        value = state.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise InputError("drift_evidence", f"state.{key}", f"must be {kind.__name__}")
        out[key] = value
    return out


class DriftEvidenceStore(Database):
    """Drift evidence per recipe, in the registry's database (SQLite or PostgreSQL)."""

    what = "drift evidence"

    def load(self, recipe: str) -> StoredEvidence | None:
        """The recipe's stored state, or None when no drift check stored one."""
        with self._session.begin() as session:
            row = session.get(DriftEvidenceRow, recipe)
            return None if row is None else StoredEvidence(dict(row.state), row.version)

    def save(self, recipe: str, state: dict[str, Any], *, expected_version: int | None) -> bool:
        """Store ``state`` for ``recipe`` if the stored one is still at ``expected_version``
        (None: none stored yet). True when stored; False, storing nothing, when another
        save came first."""
        columns = _summary(state)
        now = datetime.now(UTC)
        if expected_version is None:
            row = DriftEvidenceRow(recipe=recipe, state=state, version=1, updated_at=now, **columns)
            try:
                with self._session.begin() as session:
                    session.add(row)
            except sa.exc.IntegrityError:  # another check stored the first state
                return False
            return True
        with self._session.begin() as session:
            result = session.execute(
                sa.update(DriftEvidenceRow)
                .where(
                    DriftEvidenceRow.recipe == recipe,
                    DriftEvidenceRow.version == expected_version,
                )
                .values(state=state, version=expected_version + 1, updated_at=now, **columns)
            )
            return result.rowcount == 1
