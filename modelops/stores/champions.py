"""Moving a champion: promotion and rollback, each one transaction over the aliases, the
adapters' statuses and the audit log.

:class:`~modelops.stores.registry.Registry` exposes them as ``promote`` and ``rollback``
(documented there). A rollback replays the audit log: each taxonomy version's promote
and rollback entries form a stack whose top is that version's champion.

Lock order, in both: the recipe (PostgreSQL: an advisory transaction lock, which exists
before any alias row does, so two first promotions queue instead of both inserting),
then the recipe's ``serving`` alias, then the version's ``champion``. SQLite needs no
more: every transaction there is ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from modelops.config.errors import InputError, ModelopsError, NotFoundError
from modelops.stores.db.engine import Sessions
from modelops.stores.db.orm import AdapterRow, AliasRow, AuditRow
from modelops.stores.registry_records import (
    CHAMPION,
    RECIPE_SCOPE,
    RETIRED,
    SERVING,
    AuditEntry,
    failed_checks,
    taxonomy_version_key,
)
from modelops.stores.registry_rows import (
    adapter_row,
    add_audit,
    alias_row,
    plain_json,
    set_alias,
    utc_now,
)


def serialize_recipe(session: Session, recipe: str) -> None:
    """Hold the recipe's promotion lock until the transaction ends, so two promotions or
    rollbacks of one recipe run one after the other even before any alias row exists to
    lock (PostgreSQL: a transaction advisory lock; SQLite's ``BEGIN IMMEDIATE`` already
    serializes every write)."""
    if session.get_bind().dialect.name == "postgresql":
        digest = hashlib.sha256(f"modelops-champion:{recipe}".encode()).digest()
        key = int.from_bytes(digest[:8], "big", signed=True)
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def promote(
    sessions: Sessions,
    adapter_id: int,
    *,
    who: str,
    why: str,
    evidence: dict,
    force: bool = False,
) -> AuditEntry:
    """Make the adapter its version's champion, and the recipe's ``serving`` unless a
    newer taxonomy version serves (:meth:`Registry.promote`)."""
    if not isinstance(why, str) or not why.strip():
        raise InputError(None, "why", "a reason is required to promote")
    evidence = plain_json("evidence", evidence)
    now = utc_now()
    with sessions.begin() as session:
        row = adapter_row(session, adapter_id)
        serialize_recipe(session, row.recipe)
        session.refresh(row)  # as committed by a promotion the lock waited for
        recipe, version = row.recipe, row.taxonomy_version
        serving = alias_row(session, recipe, RECIPE_SCOPE, SERVING, lock=True)
        current = alias_row(session, recipe, version, CHAMPION, lock=True)
        if current is not None and current.adapter_id == row.id:
            raise ModelopsError(
                f"adapter {row.id} is already the champion of recipe {recipe!r} "
                f"for taxonomy version {version!r}"
            )
        refusal = gate_refusal(row)
        if refusal is not None:
            if not force:
                raise ModelopsError(
                    f"refusing to promote adapter {row.id} of recipe {recipe!r}: "
                    f"{refusal}; force to override (--force)"
                )
            evidence["forced"] = True
            evidence["overridden"] = refusal
        previous_id = current.adapter_id if current is not None else None
        serving_id = serving.adapter_id if serving is not None else None
        switch = serving_id is None or taxonomy_version_key(
            adapter_row(session, serving_id).taxonomy_version
        ) <= taxonomy_version_key(version)
        if previous_id is not None:
            adapter_row(session, previous_id).status = RETIRED
        row.status = CHAMPION
        set_alias(session, recipe, version, CHAMPION, row.id, now)
        if switch:
            set_alias(session, recipe, RECIPE_SCOPE, SERVING, row.id, now)
        evidence.update(
            taxonomy_version=version,
            serving_switched=switch,
            previous_serving_adapter_id=serving_id,
        )
        return add_audit(
            session,
            at=now,
            who=who,
            action="promote",
            recipe=recipe,
            adapter_id=row.id,
            previous_adapter_id=previous_id,
            why=why,
            evidence=evidence,
        )


def rollback(
    sessions: Sessions,
    recipe: str,
    *,
    who: str,
    why: str,
    taxonomy_version: str | None = None,
) -> AuditEntry:
    """Give a taxonomy version's champion alias back to its champion before this one,
    or fall back to an older version's champion (:meth:`Registry.rollback`)."""
    if not isinstance(why, str) or not why.strip():
        raise InputError(None, "why", "a reason is required to roll back")
    now = utc_now()
    with sessions.begin() as session:
        serialize_recipe(session, recipe)
        serving = alias_row(session, recipe, RECIPE_SCOPE, SERVING, lock=True)
        serving_id = serving.adapter_id if serving is not None else None
        if taxonomy_version is not None:
            version = taxonomy_version
        elif serving_id is not None:
            version = adapter_row(session, serving_id).taxonomy_version
        else:
            raise NotFoundError(f"recipe {recipe!r} has no champion to roll back")
        current = alias_row(session, recipe, version, CHAMPION, lock=True)
        if current is None:
            raise NotFoundError(
                f"recipe {recipe!r} has no champion of taxonomy version {version!r} to roll back"
            )
        rolled_back = current.adapter_id
        stack = champion_stack(session, recipe, version)
        if not stack or stack[-1][0] != rolled_back:
            raise ModelopsError(
                f"recipe {recipe!r}, taxonomy version {version!r}: the audit log does "
                f"not match the champion alias (adapter {rolled_back}); cannot work out "
                "what to roll back to"
            )
        evidence: dict[str, Any] = {"undone_audit_id": stack[-1][1]}
        serves = serving_id == rolled_back
        if len(stack) >= 2:
            target_id = stack[-2][0]
            set_alias(session, recipe, version, CHAMPION, target_id, now)
        else:
            fallback = older_champion(session, recipe, version) if serves else None
            if fallback is None:
                older = ", and no older taxonomy version has one" if serves else ""
                raise ModelopsError(
                    f"recipe {recipe!r} has no earlier champion to roll back to "
                    f"(adapter {rolled_back} is the first champion of taxonomy "
                    f"version {version!r}{older})"
                )
            target_id = fallback.adapter_id
            evidence["fallback_taxonomy_version"] = fallback.taxonomy_version
            session.delete(current)  # the version is left without a champion
        adapter_row(session, rolled_back).status = RETIRED
        adapter_row(session, target_id).status = CHAMPION
        if serves:
            set_alias(session, recipe, RECIPE_SCOPE, SERVING, target_id, now)
        evidence.update(
            taxonomy_version=version,
            serving_switched=serves,
            previous_serving_adapter_id=serving_id,
        )
        return add_audit(
            session,
            at=now,
            who=who,
            action="rollback",
            recipe=recipe,
            adapter_id=target_id,
            previous_adapter_id=rolled_back,
            why=why,
            evidence=evidence,
        )


def gate_refusal(row: AdapterRow) -> str | None:
    """Why the adapter's gate forbids promotion, or None when it passed."""
    if row.gate is None:
        return "it has no recorded gate decision (evaluate it first)"
    if row.gate.get("passed") is True:
        return None
    return f"its gate failed ({', '.join(failed_checks(row.gate)) or 'not passed'})"


def champion_stack(session: Session, recipe: str, version: str) -> list[tuple[int, int]]:
    """``[(champion adapter id, audit id that made it)]`` of one taxonomy version.

    Replays the recipe's promote and rollback entries whose adapter (for a
    rollback: the adapter it rolled back) has that version: promote pushes,
    rollback pops. The top is the version's champion.
    """
    subject = sa.case(
        (AuditRow.action == "rollback", AuditRow.previous_adapter_id),
        else_=AuditRow.adapter_id,
    )
    query = (
        sa.select(AuditRow.id, AuditRow.action, AuditRow.adapter_id)
        .join(AdapterRow, AdapterRow.id == subject)
        .where(
            AuditRow.recipe == recipe,
            AuditRow.action.in_(("promote", "rollback")),
            AdapterRow.taxonomy_version == version,
        )
        .order_by(AuditRow.id)
    )
    stack: list[tuple[int, int]] = []
    for audit_id, action, adapter_id in session.execute(query):
        if action == "promote" and adapter_id is not None:
            stack.append((adapter_id, audit_id))
        elif stack:
            stack.pop()
    return stack


def older_champion(session: Session, recipe: str, version: str) -> AliasRow | None:
    """The champion alias of the newest taxonomy version older than ``version``."""
    rows = session.scalars(
        sa.select(AliasRow).where(AliasRow.recipe == recipe, AliasRow.name == CHAMPION)
    ).all()
    limit = taxonomy_version_key(version)
    older = [r for r in rows if taxonomy_version_key(r.taxonomy_version) < limit]
    return max(older, key=lambda r: taxonomy_version_key(r.taxonomy_version), default=None)
