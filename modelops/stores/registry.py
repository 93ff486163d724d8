"""The registry: adapter versions with lineage, metrics and artifact hashes; the
``champion`` and ``candidate`` aliases of each (recipe, taxonomy version); the
recipe's ``serving`` alias; and an audit log of who moved what, when and why.

A recipe trains adapters per taxonomy version (``v1``, ``v2``, ...). Each version keeps
its own champion and candidate, and old versions keep theirs. ``serving`` names the
adapter that serves the recipe now (what serving and batch scoring load): promoting
an adapter moves it there, in the same transaction, unless a newer taxonomy version
already serves. So ``serving`` is always the champion of the newest version that has
one. It is stored as an alias row whose taxonomy version is ``""``.

The statuses, alias names and records live in :mod:`modelops.stores.registry_records`,
the tables in :mod:`modelops.stores.db.orm`, promotion and rollback in
:mod:`modelops.stores.champions`. SQLite by default, PostgreSQL in production; opening a
:class:`Registry` migrates the database to head (:mod:`modelops.stores.db.engine`).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

import sqlalchemy as sa

from modelops.config.errors import InputError
from modelops.stores import champions
from modelops.stores.db.engine import Database
from modelops.stores.db.orm import AdapterRow, AliasRow, AuditRow
from modelops.stores.registry_records import (
    CANDIDATE,
    CHAMPION,
    RECIPE_SCOPE,
    REJECTED,
    SERVING,
    TAXONOMY_VERSION,
    AdapterVersion,
    AuditEntry,
    failed_checks,
    taxonomy_version_key,
)
from modelops.stores.registry_rows import (
    adapter_row,
    alias_row,
    plain_json,
    set_alias,
    to_entry,
    to_version,
    utc_now,
)

_SHA256 = re.compile(r"[0-9a-f]{64}")


class Registry(Database):
    """Adapter versions, aliases and the audit log in one SQL database.

    Each method is one transaction in its own session; returned records are frozen
    snapshots, detached from the database.
    """

    what = "registry"

    # ----------------------------------------------------------------- writes

    def register(
        self,
        *,
        recipe: str,
        taxonomy_version: str,
        base_model: str,
        base_model_sha256: str,
        dataset_fingerprint: str,
        recipe_fingerprint: str,
        artifact_uri: str,
        artifact_sha256: str,
        weights_sha256: str,
        lineage: dict,
        metrics: dict,
        who: str,
    ) -> AdapterVersion:
        """Record a new adapter version as the ``candidate`` of its recipe and taxonomy
        version (audit ``register``). ``taxonomy_version`` looks like ``v1``, ``v2``, ...
        """
        for field, value in (
            ("recipe", recipe),
            ("taxonomy_version", taxonomy_version),
            ("base_model", base_model),
            ("artifact_uri", artifact_uri),
            ("who", who),
        ):
            if not isinstance(value, str) or not value.strip():
                raise InputError(None, field, "must be a non-empty string")
        if not TAXONOMY_VERSION.fullmatch(taxonomy_version):
            raise InputError(
                None, "taxonomy_version", f"must look like v1, v2, ..., got {taxonomy_version!r}"
            )
        for field, value in (
            ("base_model_sha256", base_model_sha256),
            ("artifact_sha256", artifact_sha256),
            ("weights_sha256", weights_sha256),
        ):
            if not isinstance(value, str) or not _SHA256.fullmatch(value):
                raise InputError(None, field, f"must be a sha256 hex digest, got {value!r}")
        now = utc_now()
        with self._session.begin() as session:
            row = AdapterRow(
                recipe=recipe,
                taxonomy_version=taxonomy_version,
                base_model=base_model,
                base_model_sha256=base_model_sha256,
                dataset_fingerprint=dataset_fingerprint,
                recipe_fingerprint=recipe_fingerprint,
                artifact_uri=artifact_uri,
                artifact_sha256=artifact_sha256,
                weights_sha256=weights_sha256,
                lineage=plain_json("lineage", lineage),
                metrics=plain_json("metrics", metrics),
                gate=None,
                status=CANDIDATE,
                created_at=now,
                created_by=who,
            )
            session.add(row)
            session.flush()
            set_alias(session, recipe, taxonomy_version, CANDIDATE, row.id, now)
            session.add(
                AuditRow(
                    at=now,
                    who=who,
                    action="register",
                    recipe=recipe,
                    adapter_id=row.id,
                    previous_adapter_id=None,
                    why="registered",
                    evidence={"artifact_uri": artifact_uri, "artifact_sha256": artifact_sha256},
                )
            )
            return to_version(row)

    def record_evaluation(
        self, adapter_id: int, *, metrics: dict, gate: dict, who: str
    ) -> AdapterVersion:
        """Merge ``metrics`` into the adapter's and store its gate decision.

        A failed gate (``gate["passed"]`` false) marks the adapter ``rejected`` (audit
        ``reject``), except the current champion, which stays champion; a passed gate
        is audited ``evaluate`` and turns a ``rejected`` adapter back into a candidate.
        """
        if not isinstance(gate, dict) or not isinstance(gate.get("passed"), bool):
            raise InputError(None, "gate.passed", "must be true or false")
        metrics = plain_json("metrics", metrics)
        gate = plain_json("gate", gate)
        now = utc_now()
        with self._session.begin() as session:
            row = adapter_row(session, adapter_id)
            row.metrics = {**(row.metrics or {}), **metrics}
            row.gate = gate
            passed = gate["passed"]
            if not passed and row.status != CHAMPION:
                row.status = REJECTED
            elif passed and row.status == REJECTED:
                row.status = CANDIDATE
            failed = failed_checks(gate)
            session.add(
                AuditRow(
                    at=now,
                    who=who,
                    action="evaluate" if passed else "reject",
                    recipe=row.recipe,
                    adapter_id=row.id,
                    previous_adapter_id=None,
                    why="gate passed" if passed else f"gate failed: {', '.join(failed) or '?'}",
                    evidence={"metrics": metrics, "gate": gate},
                )
            )
            session.flush()
            return to_version(row)

    def promote(
        self, adapter_id: int, *, who: str, why: str, evidence: dict, force: bool = False
    ) -> AuditEntry:
        """Make the adapter the champion of its recipe and taxonomy version, in one
        transaction; move ``serving`` to it unless a newer taxonomy version serves.

        The previous champion of that version becomes ``retired``; the audit entry
        (``promote``) records it as ``previous_adapter_id``, and in its evidence the
        ``taxonomy_version``, ``serving_switched`` and ``previous_serving_adapter_id``.
        Refused when the adapter's recorded gate did not pass (or it was never
        evaluated) unless ``force``; an override is recorded in the audit evidence as
        ``forced: true`` with what was ``overridden``.
        """
        return champions.promote(
            self._session, adapter_id, who=who, why=why, evidence=evidence, force=force
        )

    def rollback(
        self, recipe: str, *, who: str, why: str, taxonomy_version: str | None = None
    ) -> AuditEntry:
        """Give a taxonomy version's champion alias back to its champion before this one.

        ``taxonomy_version`` None means the version that serves now. Replays that
        version's promote/rollback audit entries as a stack (promote pushes, rollback
        pops), so repeated rollbacks walk further back. ``serving`` follows when it
        pointed at the rolled-back adapter. When the serving version has no earlier
        champion, serving falls back to the champion of the newest older version that
        has one (undoing a taxonomy migration: the version is left without a
        champion; evidence ``fallback_taxonomy_version``). The replaced champion
        becomes ``retired``; the audit entry is ``rollback``.
        """
        return champions.rollback(
            self._session, recipe, who=who, why=why, taxonomy_version=taxonomy_version
        )

    # ----------------------------------------------------------------- reads

    def get(self, adapter_id: int) -> AdapterVersion:
        """The adapter with this id; :class:`NotFoundError` when there is none."""
        with self._session.begin() as session:
            return to_version(adapter_row(session, adapter_id))

    def list(self, recipe: str | None = None) -> list[AdapterVersion]:
        """Adapter versions, newest first, optionally of one recipe."""
        query = sa.select(AdapterRow).order_by(AdapterRow.id.desc())
        if recipe is not None:
            query = query.where(AdapterRow.recipe == recipe)
        with self._session.begin() as session:
            return [to_version(r) for r in session.scalars(query)]

    def alias(
        self, recipe: str, name: str, taxonomy_version: str | None = None
    ) -> AdapterVersion | None:
        """The adapter an alias points at, or None.

        With ``taxonomy_version``: that version's ``champion`` or ``candidate``.
        Without: ``champion`` and ``serving`` mean the adapter that serves the recipe,
        ``candidate`` the newest candidate of any version, and ``champion@v1`` (as in
        :meth:`aliases`) the champion of ``v1``.
        """
        if taxonomy_version is None and "@" in name:
            name, taxonomy_version = name.split("@", 1)
        if taxonomy_version is not None and name == SERVING:
            raise InputError(
                None, "taxonomy_version", "serving is per recipe, not per taxonomy version"
            )
        with self._session.begin() as session:
            if taxonomy_version is not None:
                row = alias_row(session, recipe, taxonomy_version, name)
                adapter_id = row.adapter_id if row is not None else None
            elif name in (CHAMPION, SERVING):
                row = alias_row(session, recipe, RECIPE_SCOPE, SERVING)
                adapter_id = row.adapter_id if row is not None else None
            elif name == CANDIDATE:
                adapter_id = session.scalar(
                    sa.select(sa.func.max(AliasRow.adapter_id)).where(
                        AliasRow.recipe == recipe, AliasRow.name == CANDIDATE
                    )
                )
            else:
                adapter_id = None
            return to_version(adapter_row(session, adapter_id)) if adapter_id is not None else None

    def serving_adapters(self, recipes: Collection[str] | None = None) -> dict[str, AdapterVersion]:
        """``{recipe: the adapter that serves it}`` for every recipe that has one (or each
        of ``recipes``), in one query (what :meth:`alias` ``(recipe, "champion")`` gives,
        for all recipes at once: the ``base_models`` and ``teacher_champions`` sensors'
        read)."""
        query = sa.select(AdapterRow).join(
            AliasRow,
            sa.and_(
                AliasRow.adapter_id == AdapterRow.id,
                AliasRow.taxonomy_version == RECIPE_SCOPE,
                AliasRow.name == SERVING,
            ),
        )
        if recipes is not None:
            query = query.where(AdapterRow.recipe.in_(sorted(recipes)))
        with self._session.begin() as session:
            return {row.recipe: to_version(row) for row in session.scalars(query)}

    def aliases(self, recipe: str, taxonomy_version: str | None = None) -> dict[str, int]:
        """``{alias name: adapter id}`` for one recipe.

        With ``taxonomy_version``: that version's aliases (``champion``, ``candidate``).
        Without: ``serving``, ``champion`` (the serving adapter), ``candidate`` (the
        newest of any version) and ``champion@<version>`` for each version's champion.
        """
        query = sa.select(AliasRow).where(AliasRow.recipe == recipe)
        if taxonomy_version is not None:
            query = query.where(AliasRow.taxonomy_version == taxonomy_version)
        with self._session.begin() as session:
            rows = session.scalars(query).all()
        if taxonomy_version is not None:
            return {row.name: row.adapter_id for row in rows}
        result: dict[str, int] = {}
        for row in rows:
            if row.name == SERVING:
                result[SERVING] = result[CHAMPION] = row.adapter_id
        candidates = [row.adapter_id for row in rows if row.name == CANDIDATE]
        if candidates:
            result[CANDIDATE] = max(candidates)
        champions = [row for row in rows if row.name == CHAMPION]
        for row in sorted(champions, key=lambda r: taxonomy_version_key(r.taxonomy_version)):
            result[f"{CHAMPION}@{row.taxonomy_version}"] = row.adapter_id
        return result

    def versions(self, recipe: str) -> dict[str, dict[str, Any]]:
        """Per taxonomy version of ``recipe``, oldest first: ``{version: {"champion":
        id | None, "candidate": id | None, "adapters": count, "serving": bool}}``.
        ``serving`` is true for the version of the adapter that serves the recipe."""
        counts = (
            sa.select(AdapterRow.taxonomy_version, sa.func.count())
            .where(AdapterRow.recipe == recipe)
            .group_by(AdapterRow.taxonomy_version)
        )
        with self._session.begin() as session:
            adapters = dict(session.execute(counts).tuples().all())
            rows = session.scalars(sa.select(AliasRow).where(AliasRow.recipe == recipe)).all()
            serving = next((r.adapter_id for r in rows if r.name == SERVING), None)
            serving_version = adapter_row(session, serving).taxonomy_version if serving else None
        aliases = {(r.taxonomy_version, r.name): r.adapter_id for r in rows}
        return {
            version: {
                CHAMPION: aliases.get((version, CHAMPION)),
                CANDIDATE: aliases.get((version, CANDIDATE)),
                "adapters": adapters[version],
                SERVING: version == serving_version,
            }
            for version in sorted(adapters, key=taxonomy_version_key)
        }

    def audit(self, recipe: str | None = None, adapter_id: int | None = None) -> list[AuditEntry]:
        """Audit entries, newest first; filtered by recipe and/or adapter (an adapter's
        entries include those where it was the replaced champion)."""
        query = sa.select(AuditRow).order_by(AuditRow.id.desc())
        if recipe is not None:
            query = query.where(AuditRow.recipe == recipe)
        if adapter_id is not None:
            query = query.where(
                sa.or_(
                    AuditRow.adapter_id == adapter_id, AuditRow.previous_adapter_id == adapter_id
                )
            )
        with self._session.begin() as session:
            return [to_entry(r) for r in session.scalars(query)]

    def find_by_weights(self, recipe: str, weights_sha256: str) -> list[AdapterVersion]:
        """Adapter versions of ``recipe`` whose weights have this sha256, newest first."""
        query = (
            sa.select(AdapterRow)
            .where(AdapterRow.recipe == recipe, AdapterRow.weights_sha256 == weights_sha256)
            .order_by(AdapterRow.id.desc())
        )
        with self._session.begin() as session:
            return [to_version(r) for r in session.scalars(query)]
