"""The registry: adapter versions with lineage, metrics and artifact hashes; the
``champion`` and ``candidate`` aliases of each (recipe, taxonomy version); the
recipe's ``serving`` alias; and an audit log of who moved what, when and why.

A recipe trains adapters per taxonomy version (``v1``, ``v2``, ...). Each version keeps
its own champion and candidate, and old versions keep theirs. ``serving`` names the
adapter that serves the recipe now (what serving and batch scoring load): promoting
an adapter moves it there, in the same transaction, unless a newer taxonomy version
already serves. So ``serving`` is always the champion of the newest version that has
one. It is stored as an alias row whose taxonomy version is ``""``.

SQLite by default, PostgreSQL in production. The schema is managed by alembic
(``modelops/stores/migrations``); opening a :class:`Registry` upgrades the database to
the latest revision, in one transaction that holds a database-wide lock, so two
processes opening the same database at once are safe.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from modelops.config.errors import InputError, ModelopsError, NotFoundError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
"""The alembic script directory, inside the package so it works when installed."""

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

# Stable key for PostgreSQL's advisory lock that serializes concurrent migrations.
_PG_MIGRATION_LOCK = 0x6D6F_6465_6C6F_7073 & 0x7FFF_FFFF_FFFF_FFFF
_SHA256 = re.compile(r"[0-9a-f]{64}")
# As modelops.config.taxonomy.VERSION_PATTERN: versions are compared by their number.
_TAXONOMY_VERSION = re.compile(r"v([0-9]+)")
# Alembic keeps its running context in module globals: one upgrade per process at a time.
_UPGRADE_LOCK = threading.Lock()

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# --------------------------------------------------------------------------- records


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


# --------------------------------------------------------------------------- schema


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: sa.JSON()}


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class AdapterRow(Base):
    __tablename__ = "adapter_versions"
    __table_args__ = (
        sa.Index("ix_adapter_versions_recipe", "recipe"),
        sa.Index("ix_adapter_versions_weights_sha256", "weights_sha256"),
        sa.CheckConstraint(_in("status", STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    recipe: Mapped[str] = mapped_column(sa.String(200))
    taxonomy_version: Mapped[str] = mapped_column(sa.String(200))
    base_model: Mapped[str] = mapped_column(sa.String(200))
    base_model_sha256: Mapped[str] = mapped_column(sa.String(64))
    dataset_fingerprint: Mapped[str] = mapped_column(sa.String(128))
    recipe_fingerprint: Mapped[str] = mapped_column(sa.String(128))
    artifact_uri: Mapped[str] = mapped_column(sa.Text)
    artifact_sha256: Mapped[str] = mapped_column(sa.String(64))
    weights_sha256: Mapped[str] = mapped_column(sa.String(64))
    lineage: Mapped[dict[str, Any]]
    metrics: Mapped[dict[str, Any]]
    gate: Mapped[dict[str, Any] | None]
    status: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(sa.String(200))


# Recipe-level aliases (serving) and only they have the empty taxonomy version.
ALIAS_SCOPE_CHECK = (
    f"(name = '{SERVING}' AND taxonomy_version = '{RECIPE_SCOPE}') OR "
    f"(name <> '{SERVING}' AND taxonomy_version <> '{RECIPE_SCOPE}')"
)


class AliasRow(Base):
    __tablename__ = "aliases"
    __table_args__ = (
        sa.UniqueConstraint("recipe", "taxonomy_version", "name"),
        sa.Index("ix_aliases_adapter_id", "adapter_id"),
        sa.CheckConstraint(ALIAS_SCOPE_CHECK, name="scope"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    recipe: Mapped[str] = mapped_column(sa.String(200))
    taxonomy_version: Mapped[str] = mapped_column(sa.String(200))
    """The adapter's taxonomy version; ``""`` for the recipe-level ``serving`` alias."""
    name: Mapped[str] = mapped_column(sa.String(64))
    adapter_id: Mapped[int] = mapped_column(sa.ForeignKey("adapter_versions.id"))
    updated_at: Mapped[datetime]


class AuditRow(Base):
    __tablename__ = "audit_log"
    __table_args__ = (
        sa.Index("ix_audit_log_recipe", "recipe"),
        sa.Index("ix_audit_log_adapter_id", "adapter_id"),
        sa.CheckConstraint(_in("action", ACTIONS), name="action"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    who: Mapped[str] = mapped_column(sa.String(200))
    action: Mapped[str] = mapped_column(sa.String(16))
    recipe: Mapped[str] = mapped_column(sa.String(200))
    adapter_id: Mapped[int | None] = mapped_column(sa.ForeignKey("adapter_versions.id"))
    previous_adapter_id: Mapped[int | None] = mapped_column(sa.ForeignKey("adapter_versions.id"))
    why: Mapped[str] = mapped_column(sa.Text)
    evidence: Mapped[dict[str, Any]]


# --------------------------------------------------------------------------- engine


def registry_engine(url: str) -> Engine:
    """An engine for the registry database.

    For SQLite: creates the parent directory of the file, turns on foreign keys, waits
    up to 30 s for locks, and makes every transaction ``BEGIN IMMEDIATE`` so that DDL
    is transactional and concurrent writers queue instead of failing.
    """
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ModelopsError(f"invalid database URL {url!r}: {exc}") from None
    if parsed.get_backend_name() != "sqlite":
        try:
            return sa.create_engine(parsed, pool_pre_ping=True)
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise ModelopsError(f"cannot use database URL {_safe(parsed)}: {exc}") from None

    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        parent = Path(database).expanduser().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ModelopsError(f"cannot create the registry directory {parent}: {exc}") from None
    engine = sa.create_engine(parsed, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Run ``alembic upgrade <revision>`` on ``connection``, inside its open transaction.

    Takes a lock first (SQLite: the ``BEGIN IMMEDIATE`` write lock; PostgreSQL: an
    advisory transaction lock) so concurrent upgrades run one after the other; the
    second finds the database at head and does nothing.
    """
    with _UPGRADE_LOCK:
        if connection.dialect.name == "postgresql":
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
            )
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def _safe(url: sa.URL) -> str:
    return url.render_as_string(hide_password=True)


def _first_line(exc: BaseException) -> str:
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip()
    return text.splitlines()[0] if text else type(inner).__name__


def _json(field: str, value: Any) -> Any:
    """A plain-JSON copy of ``value``; a clear error naming ``field`` otherwise."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InputError(None, field, f"must be JSON-serialisable (no NaN): {exc}") from None


def _now() -> datetime:
    return datetime.now(UTC)


def taxonomy_version_key(version: str) -> tuple[int, str]:
    """Sort key of a taxonomy version: by number, so ``v2 < v10``.

    Anything not shaped ``vN`` (only possible in rows older than that rule) sorts
    first, by its text.
    """
    match = _TAXONOMY_VERSION.fullmatch(version)
    return (int(match.group(1)), "") if match else (-1, version)


def _failed_checks(gate: dict) -> list[str]:
    """Names of the failed checks in a gate decision (a list or a mapping of checks)."""
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
        if ok is False:
            failed.append(name)
    return failed


def _to_version(row: AdapterRow) -> AdapterVersion:
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


def _to_entry(row: AuditRow) -> AuditEntry:
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


# --------------------------------------------------------------------------- registry


def open_database(url: str, what: str) -> tuple[Engine, sessionmaker]:
    """Engine and session factory for the platform database at ``url``, migrated to
    head; one clear ModelopsError naming ``what`` and the (password-free) URL."""
    engine = registry_engine(url)
    try:
        with engine.begin() as connection:
            upgrade(connection)
    except (sa.exc.SQLAlchemyError, CommandError) as exc:
        engine.dispose()
        raise ModelopsError(f"cannot open {what} {_safe(engine.url)}: {_first_line(exc)}") from None
    return engine, sessionmaker(engine, expire_on_commit=False)


class Registry:
    """Adapter versions, aliases and the audit log in one SQL database.

    Each method is one transaction in its own session; returned records are frozen
    snapshots, detached from the database.
    """

    def __init__(self, url: str):
        """Open (creating if needed) the registry at ``url`` and migrate it to head."""
        self.url = url
        self._engine, self._session = open_database(url, "registry")

    def close(self) -> None:
        """Close the registry's database connections."""
        self._engine.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
        if not _TAXONOMY_VERSION.fullmatch(taxonomy_version):
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
        now = _now()
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
                lineage=_json("lineage", lineage),
                metrics=_json("metrics", metrics),
                gate=None,
                status=CANDIDATE,
                created_at=now,
                created_by=who,
            )
            session.add(row)
            session.flush()
            self._set_alias(session, recipe, taxonomy_version, CANDIDATE, row.id, now)
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
            return _to_version(row)

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
        metrics = _json("metrics", metrics)
        gate = _json("gate", gate)
        now = _now()
        with self._session.begin() as session:
            row = self._row(session, adapter_id)
            row.metrics = {**(row.metrics or {}), **metrics}
            row.gate = gate
            passed = gate["passed"]
            if not passed and row.status != CHAMPION:
                row.status = REJECTED
            elif passed and row.status == REJECTED:
                row.status = CANDIDATE
            failed = _failed_checks(gate)
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
            return _to_version(row)

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
        if not isinstance(why, str) or not why.strip():
            raise InputError(None, "why", "a reason is required to promote")
        evidence = _json("evidence", evidence)
        now = _now()
        with self._session.begin() as session:
            row = self._row(session, adapter_id)
            recipe, version = row.recipe, row.taxonomy_version
            # Lock order, here and in rollback: serving, then the version's champion.
            serving = self._alias_row(session, recipe, RECIPE_SCOPE, SERVING, lock=True)
            current = self._alias_row(session, recipe, version, CHAMPION, lock=True)
            if current is not None and current.adapter_id == row.id:
                raise ModelopsError(
                    f"adapter {row.id} is already the champion of recipe {recipe!r} "
                    f"for taxonomy version {version!r}"
                )
            refusal = self._gate_refusal(row)
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
                self._row(session, serving_id).taxonomy_version
            ) <= taxonomy_version_key(version)
            if previous_id is not None:
                self._row(session, previous_id).status = RETIRED
            row.status = CHAMPION
            self._set_alias(session, recipe, version, CHAMPION, row.id, now)
            if switch:
                self._set_alias(session, recipe, RECIPE_SCOPE, SERVING, row.id, now)
            evidence.update(
                taxonomy_version=version,
                serving_switched=switch,
                previous_serving_adapter_id=serving_id,
            )
            return self._audit(
                session, now, who, "promote", recipe, row.id, previous_id, why, evidence
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
        if not isinstance(why, str) or not why.strip():
            raise InputError(None, "why", "a reason is required to roll back")
        now = _now()
        with self._session.begin() as session:
            serving = self._alias_row(session, recipe, RECIPE_SCOPE, SERVING, lock=True)
            serving_id = serving.adapter_id if serving is not None else None
            if taxonomy_version is not None:
                version = taxonomy_version
            elif serving_id is not None:
                version = self._row(session, serving_id).taxonomy_version
            else:
                raise NotFoundError(f"recipe {recipe!r} has no champion to roll back")
            current = self._alias_row(session, recipe, version, CHAMPION, lock=True)
            if current is None:
                raise NotFoundError(
                    f"recipe {recipe!r} has no champion of taxonomy version {version!r} "
                    "to roll back"
                )
            rolled_back = current.adapter_id
            stack = self._champion_stack(session, recipe, version)
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
                self._set_alias(session, recipe, version, CHAMPION, target_id, now)
            else:
                fallback = self._older_champion(session, recipe, version) if serves else None
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
            self._row(session, rolled_back).status = RETIRED
            self._row(session, target_id).status = CHAMPION
            if serves:
                self._set_alias(session, recipe, RECIPE_SCOPE, SERVING, target_id, now)
            evidence.update(
                taxonomy_version=version,
                serving_switched=serves,
                previous_serving_adapter_id=serving_id,
            )
            return self._audit(
                session, now, who, "rollback", recipe, target_id, rolled_back, why, evidence
            )

    # ----------------------------------------------------------------- reads

    def get(self, adapter_id: int) -> AdapterVersion:
        """The adapter with this id; :class:`NotFoundError` when there is none."""
        with self._session.begin() as session:
            return _to_version(self._row(session, adapter_id))

    def list(self, recipe: str | None = None) -> list[AdapterVersion]:
        """Adapter versions, newest first, optionally of one recipe."""
        query = sa.select(AdapterRow).order_by(AdapterRow.id.desc())
        if recipe is not None:
            query = query.where(AdapterRow.recipe == recipe)
        with self._session.begin() as session:
            return [_to_version(r) for r in session.scalars(query)]

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
                row = self._alias_row(session, recipe, taxonomy_version, name)
                adapter_id = row.adapter_id if row is not None else None
            elif name in (CHAMPION, SERVING):
                row = self._alias_row(session, recipe, RECIPE_SCOPE, SERVING)
                adapter_id = row.adapter_id if row is not None else None
            elif name == CANDIDATE:
                adapter_id = session.scalar(
                    sa.select(sa.func.max(AliasRow.adapter_id)).where(
                        AliasRow.recipe == recipe, AliasRow.name == CANDIDATE
                    )
                )
            else:
                adapter_id = None
            return _to_version(self._row(session, adapter_id)) if adapter_id is not None else None

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
            serving_version = self._row(session, serving).taxonomy_version if serving else None
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
            return [_to_entry(r) for r in session.scalars(query)]

    def find_by_weights(self, recipe: str, weights_sha256: str) -> list[AdapterVersion]:
        """Adapter versions of ``recipe`` whose weights have this sha256, newest first."""
        query = (
            sa.select(AdapterRow)
            .where(AdapterRow.recipe == recipe, AdapterRow.weights_sha256 == weights_sha256)
            .order_by(AdapterRow.id.desc())
        )
        with self._session.begin() as session:
            return [_to_version(r) for r in session.scalars(query)]

    # ----------------------------------------------------------------- helpers

    @staticmethod
    def _gate_refusal(row: AdapterRow) -> str | None:
        """Why the adapter's gate forbids promotion, or None when it passed."""
        if row.gate is None:
            return "it has no recorded gate decision (evaluate it first)"
        if row.gate.get("passed") is True:
            return None
        return f"its gate failed ({', '.join(_failed_checks(row.gate)) or 'not passed'})"

    @staticmethod
    def _row(session: Session, adapter_id: int) -> AdapterRow:
        row = session.get(AdapterRow, adapter_id) if isinstance(adapter_id, int) else None
        if row is None:
            raise NotFoundError(f"adapter {adapter_id} not found")
        return row

    @staticmethod
    def _alias_row(
        session: Session, recipe: str, taxonomy_version: str, name: str, *, lock: bool = False
    ) -> AliasRow | None:
        query = sa.select(AliasRow).where(
            AliasRow.recipe == recipe,
            AliasRow.taxonomy_version == taxonomy_version,
            AliasRow.name == name,
        )
        if lock:
            query = query.with_for_update()
        return session.scalars(query).one_or_none()

    def _set_alias(
        self,
        session: Session,
        recipe: str,
        taxonomy_version: str,
        name: str,
        adapter_id: int,
        now: datetime,
    ) -> None:
        alias = self._alias_row(session, recipe, taxonomy_version, name, lock=True)
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

    @staticmethod
    def _champion_stack(session: Session, recipe: str, version: str) -> list[tuple[int, int]]:
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

    @staticmethod
    def _older_champion(session: Session, recipe: str, version: str) -> AliasRow | None:
        """The champion alias of the newest taxonomy version older than ``version``."""
        rows = session.scalars(
            sa.select(AliasRow).where(AliasRow.recipe == recipe, AliasRow.name == CHAMPION)
        ).all()
        limit = taxonomy_version_key(version)
        older = [r for r in rows if taxonomy_version_key(r.taxonomy_version) < limit]
        return max(older, key=lambda r: taxonomy_version_key(r.taxonomy_version), default=None)

    @staticmethod
    def _audit(
        session: Session,
        at: datetime,
        who: str,
        action: str,
        recipe: str,
        adapter_id: int | None,
        previous_adapter_id: int | None,
        why: str,
        evidence: dict,
    ) -> AuditEntry:
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
        return _to_entry(entry)
