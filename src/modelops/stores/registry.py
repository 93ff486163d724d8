"""The registry: adapter versions with lineage, metrics and artifact hashes; the
``champion`` and ``candidate`` aliases of each recipe; and an audit log of who moved
what, when and why.

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

from modelops.errors import InputError, ModelopsError, NotFoundError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
"""The alembic script directory, inside the package so it works when installed."""

CANDIDATE = "candidate"
CHAMPION = "champion"
RETIRED = "retired"
REJECTED = "rejected"
STATUSES = (CANDIDATE, CHAMPION, RETIRED, REJECTED)
ALIASES = (CHAMPION, CANDIDATE)
ACTIONS = ("register", "promote", "rollback", "evaluate", "reject")

# Stable key for PostgreSQL's advisory lock that serializes concurrent migrations.
_PG_MIGRATION_LOCK = 0x6D6F_6465_6C6F_7073 & 0x7FFF_FFFF_FFFF_FFFF
_SHA256 = re.compile(r"[0-9a-f]{64}")
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


class AliasRow(Base):
    __tablename__ = "aliases"
    __table_args__ = (
        sa.UniqueConstraint("recipe", "name"),
        sa.Index("ix_aliases_adapter_id", "adapter_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    recipe: Mapped[str] = mapped_column(sa.String(200))
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


def upgrade(connection: Connection) -> None:
    """Run ``alembic upgrade head`` on ``connection``, inside its open transaction.

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
        command.upgrade(config, "head")


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


class Registry:
    """Adapter versions, aliases and the audit log in one SQL database.

    Each method is one transaction in its own session; returned records are frozen
    snapshots, detached from the database.
    """

    def __init__(self, url: str):
        """Open (creating if needed) the registry at ``url`` and migrate it to head."""
        self.url = url
        self._engine = registry_engine(url)
        try:
            with self._engine.begin() as connection:
                upgrade(connection)
        except (sa.exc.SQLAlchemyError, CommandError) as exc:
            self._engine.dispose()
            raise ModelopsError(
                f"cannot open registry {_safe(self._engine.url)}: {_first_line(exc)}"
            ) from None
        self._session = sessionmaker(self._engine, expire_on_commit=False)

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
        """Record a new adapter version as the recipe's ``candidate`` (audit ``register``)."""
        for field, value in (
            ("recipe", recipe),
            ("taxonomy_version", taxonomy_version),
            ("base_model", base_model),
            ("artifact_uri", artifact_uri),
            ("who", who),
        ):
            if not isinstance(value, str) or not value.strip():
                raise InputError(None, field, "must be a non-empty string")
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
            self._set_alias(session, recipe, CANDIDATE, row.id, now)
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
        """Make the adapter its recipe's champion, in one transaction.

        The previous champion becomes ``retired``; the audit entry (``promote``) records
        it as ``previous_adapter_id``. Refused when the adapter's recorded gate did not
        pass (or it was never evaluated) unless ``force``; an override is
        recorded in the audit evidence as ``forced: true`` with what was ``overridden``.
        """
        if not isinstance(why, str) or not why.strip():
            raise InputError(None, "why", "a reason is required to promote")
        evidence = _json("evidence", evidence)
        now = _now()
        with self._session.begin() as session:
            row = self._row(session, adapter_id)
            current = self._alias_row(session, row.recipe, CHAMPION, lock=True)
            if current is not None and current.adapter_id == row.id:
                raise ModelopsError(
                    f"adapter {row.id} is already the champion of recipe {row.recipe!r}"
                )
            refusal = self._gate_refusal(row)
            if refusal is not None:
                if not force:
                    raise ModelopsError(
                        f"refusing to promote adapter {row.id} of recipe {row.recipe!r}: "
                        f"{refusal}; force to override (--force)"
                    )
                evidence["forced"] = True
                evidence["overridden"] = refusal
            previous_id = current.adapter_id if current is not None else None
            if previous_id is not None:
                self._row(session, previous_id).status = RETIRED
            row.status = CHAMPION
            self._set_alias(session, row.recipe, CHAMPION, row.id, now)
            entry = AuditRow(
                at=now,
                who=who,
                action="promote",
                recipe=row.recipe,
                adapter_id=row.id,
                previous_adapter_id=previous_id,
                why=why,
                evidence=evidence,
            )
            session.add(entry)
            session.flush()
            return _to_entry(entry)

    def rollback(self, recipe: str, *, who: str, why: str) -> AuditEntry:
        """Give the champion alias back to the adapter that was champion before this one.

        Replays the recipe's promote/rollback audit entries as a stack (promote pushes,
        rollback pops), so repeated rollbacks walk further back. The replaced champion
        becomes ``retired``; the audit entry is ``rollback``.
        """
        if not isinstance(why, str) or not why.strip():
            raise InputError(None, "why", "a reason is required to roll back")
        now = _now()
        with self._session.begin() as session:
            current = self._alias_row(session, recipe, CHAMPION, lock=True)
            if current is None:
                raise NotFoundError(f"recipe {recipe!r} has no champion to roll back")
            entries = session.scalars(
                sa.select(AuditRow)
                .where(AuditRow.recipe == recipe, AuditRow.action.in_(("promote", "rollback")))
                .order_by(AuditRow.id)
            ).all()
            stack: list[tuple[int, int]] = []  # (champion adapter id, audit id that made it)
            for e in entries:
                if e.action == "promote" and e.adapter_id is not None:
                    stack.append((e.adapter_id, e.id))
                elif stack:
                    stack.pop()
            if not stack or stack[-1][0] != current.adapter_id:
                raise ModelopsError(
                    f"recipe {recipe!r}: the audit log does not match the champion alias "
                    f"(adapter {current.adapter_id}); cannot work out what to roll back to"
                )
            if len(stack) < 2:
                raise ModelopsError(
                    f"recipe {recipe!r} has no earlier champion to roll back to "
                    f"(adapter {current.adapter_id} is the first)"
                )
            undone_audit_id = stack[-1][1]
            target_id = stack[-2][0]
            self._row(session, current.adapter_id).status = RETIRED
            self._row(session, target_id).status = CHAMPION
            previous_id = current.adapter_id
            self._set_alias(session, recipe, CHAMPION, target_id, now)
            entry = AuditRow(
                at=now,
                who=who,
                action="rollback",
                recipe=recipe,
                adapter_id=target_id,
                previous_adapter_id=previous_id,
                why=why,
                evidence={"undone_audit_id": undone_audit_id},
            )
            session.add(entry)
            session.flush()
            return _to_entry(entry)

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

    def alias(self, recipe: str, name: str) -> AdapterVersion | None:
        """The adapter the alias ``name`` (``champion``/``candidate``) points at, or None."""
        with self._session.begin() as session:
            alias = self._alias_row(session, recipe, name)
            return _to_version(self._row(session, alias.adapter_id)) if alias else None

    def aliases(self, recipe: str) -> dict[str, int]:
        """``{alias name: adapter id}`` for one recipe."""
        query = sa.select(AliasRow.name, AliasRow.adapter_id).where(AliasRow.recipe == recipe)
        with self._session.begin() as session:
            return {name: adapter_id for name, adapter_id in session.execute(query)}

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
        session: Session, recipe: str, name: str, *, lock: bool = False
    ) -> AliasRow | None:
        query = sa.select(AliasRow).where(AliasRow.recipe == recipe, AliasRow.name == name)
        if lock:
            query = query.with_for_update()
        return session.scalars(query).one_or_none()

    def _set_alias(
        self, session: Session, recipe: str, name: str, adapter_id: int, now: datetime
    ) -> None:
        alias = self._alias_row(session, recipe, name, lock=True)
        if alias is None:
            session.add(AliasRow(recipe=recipe, name=name, adapter_id=adapter_id, updated_at=now))
        else:
            alias.adapter_id = adapter_id
            alias.updated_at = now
