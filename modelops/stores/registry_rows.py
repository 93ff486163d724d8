"""The registry's rows inside one open session: find an adapter or an alias, move an
alias, append to the audit log, and turn rows into the frozen records callers get.

Shared by the registry's queries (:mod:`modelops.stores.registry`) and its champion
moves (:mod:`modelops.stores.champions`); every function works in the caller's
transaction and commits nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from modelops.config.errors import InputError, NotFoundError
from modelops.stores.db.orm import AdapterRow, AliasRow, AuditRow
from modelops.stores.registry_records import AdapterVersion, AuditEntry


def utc_now() -> datetime:
    return datetime.now(UTC)


def plain_json(field: str, value: Any) -> Any:
    """A plain-JSON copy of ``value``; a clear error naming ``field`` otherwise."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InputError(None, field, f"must be JSON-serialisable (no NaN): {exc}") from None


def to_version(row: AdapterRow) -> AdapterVersion:
    return AdapterVersion(
        id=row.id,
        recipe=row.recipe,
        taxonomy_version=row.taxonomy_version,
        base_model=row.base_model,
        base_model_sha256=row.base_model_sha256,
        dataset_fingerprint=row.dataset_fingerprint,
        recipe_fingerprint=row.recipe_fingerprint,
        artifact_uri=row.artifact_uri,
        artifact_sha256=row.artifact_sha256,
        weights_sha256=row.weights_sha256,
        lineage=dict(row.lineage or {}),
        metrics=dict(row.metrics or {}),
        gate=dict(row.gate) if row.gate is not None else None,
        status=row.status,
        created_at=row.created_at,
        created_by=row.created_by,
    )


def to_entry(row: AuditRow) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        at=row.at,
        who=row.who,
        action=row.action,
        recipe=row.recipe,
        adapter_id=row.adapter_id,
        previous_adapter_id=row.previous_adapter_id,
        why=row.why,
        evidence=dict(row.evidence or {}),
    )


def adapter_row(session: Session, adapter_id: int) -> AdapterRow:
    """The adapter's row; :class:`NotFoundError` when there is none."""
    row = session.get(AdapterRow, adapter_id) if isinstance(adapter_id, int) else None
    if row is None:
        raise NotFoundError(f"adapter {adapter_id} not found")
    return row


def alias_row(
    session: Session, recipe: str, taxonomy_version: str, name: str, *, lock: bool = False
) -> AliasRow | None:
    """The alias row, locked for update when asked; None when the alias is not set."""
    query = sa.select(AliasRow).where(
        AliasRow.recipe == recipe,
        AliasRow.taxonomy_version == taxonomy_version,
        AliasRow.name == name,
    )
    if lock:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def set_alias(
    session: Session,
    recipe: str,
    taxonomy_version: str,
    name: str,
    adapter_id: int,
    now: datetime,
) -> None:
    """Point the alias at ``adapter_id``, creating it when it is not set."""
    alias = alias_row(session, recipe, taxonomy_version, name, lock=True)
    if alias is None:
        session.add(
            AliasRow(
                recipe=recipe,
                taxonomy_version=taxonomy_version,
                name=name,
                adapter_id=adapter_id,
                updated_at=now,
            )
        )
    else:
        alias.adapter_id = adapter_id
        alias.updated_at = now


def add_audit(
    session: Session,
    *,
    at: datetime,
    who: str,
    action: str,
    recipe: str,
    adapter_id: int | None,
    previous_adapter_id: int | None,
    why: str,
    evidence: dict,
) -> AuditEntry:
    """Append one audit entry (flushed, so it has its id); its record."""
    entry = AuditRow(
        at=at,
        who=who,
        action=action,
        recipe=recipe,
        adapter_id=adapter_id,
        previous_adapter_id=previous_adapter_id,
        why=why,
        evidence=evidence,
    )
    session.add(entry)
    session.flush()
    return to_entry(entry)
