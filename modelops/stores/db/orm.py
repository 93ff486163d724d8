"""Every table of the platform database, on one declarative base (one metadata, one
migration chain): the registry's adapter versions, aliases and audit log, and the
production log's predictions and feedback.

The models match the alembic revisions (``modelops/stores/db/migrations``); a test
compares them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from modelops.stores.db.engine import Base
from modelops.stores.registry_records import ACTIONS, RECIPE_SCOPE, SERVING, STATUSES

MAX_EXTERNAL_ID_CHARS = 200
"""The width of ``predictions.external_id``."""
MAX_CLIENT_REQUEST_ID_CHARS = 64
"""The width of ``predictions.client_request_id`` (the longest client id kept)."""


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


# --------------------------------------------------------------------------- registry


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


# --------------------------------------------------------------------------- production log
# Created by revision 0003; 0004 adds ``predictions.external_id``, 0005
# ``predictions.base_model``, 0006 ``predictions.client_request_id``, 0007
# ``predictions.oos_score`` and ``predictions.out_of_scope``.


class PredictionRow(Base):
    __tablename__ = "predictions"
    __table_args__ = (
        sa.Index("ix_predictions_recipe_id", "recipe", "id"),
        sa.Index("ix_predictions_recipe_text_sha256", "recipe", "text_sha256"),
        sa.Index("ix_predictions_batch_id", "batch_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    recipe: Mapped[str] = mapped_column(sa.String(200))
    taxonomy_version: Mapped[str] = mapped_column(sa.String(200))
    adapter_id: Mapped[int]
    text: Mapped[str | None] = mapped_column(sa.Text)
    text_sha256: Mapped[str] = mapped_column(sa.String(64))
    text_chars: Mapped[int]
    predicted_label: Mapped[str] = mapped_column(sa.String(200))
    confidence: Mapped[float] = mapped_column(sa.Float)
    top_k: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON)
    source: Mapped[str] = mapped_column(sa.String(200))
    batch_id: Mapped[str | None] = mapped_column(sa.String(64))
    external_id: Mapped[str | None] = mapped_column(sa.String(MAX_EXTERNAL_ID_CHARS))
    base_model: Mapped[str | None] = mapped_column(sa.String(200))
    """The catalog reference of the base that answered (revision 0005; older rows: null)."""
    client_request_id: Mapped[str | None] = mapped_column(sa.String(MAX_CLIENT_REQUEST_ID_CHARS))
    """The ``X-Request-ID`` the client sent (revision 0006); ``batch_id`` holds the
    server's own id of the request."""
    oos_score: Mapped[float | None] = mapped_column(sa.Float)
    """The out-of-scope score the serving adapter gave the text (revision 0007;
    ``modelops.monitoring.out_of_scope``): null for rows logged before, and for adapters
    without an out-of-scope model."""
    out_of_scope: Mapped[bool | None] = mapped_column(sa.Boolean)
    """Whether that score was past the adapter's calibrated threshold (revision 0007)."""


class FeedbackRow(Base):
    __tablename__ = "feedback"
    __table_args__ = (
        sa.Index("ix_feedback_recipe_id", "recipe", "id"),
        sa.Index("ix_feedback_prediction_id", "prediction_id"),  # revision 0009
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    recipe: Mapped[str] = mapped_column(sa.String(200))
    prediction_id: Mapped[int | None] = mapped_column(sa.ForeignKey("predictions.id"))
    text: Mapped[str | None] = mapped_column(sa.Text)
    text_sha256: Mapped[str] = mapped_column(sa.String(64))
    true_label: Mapped[str] = mapped_column(sa.String(200))
    source: Mapped[str] = mapped_column(sa.String(200))


class ShadowRow(Base):
    """A candidate's answer to live traffic beside the champion's (revision 0005)."""

    __tablename__ = "shadow_predictions"
    __table_args__ = (
        sa.Index(
            "ix_shadow_predictions_recipe_candidate_adapter_id", "recipe", "candidate_adapter_id"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    recipe: Mapped[str] = mapped_column(sa.String(200))
    candidate_adapter_id: Mapped[int]
    champion_adapter_id: Mapped[int]
    batch_id: Mapped[str | None] = mapped_column(sa.String(64))
    text_sha256: Mapped[str] = mapped_column(sa.String(64))
    candidate_label: Mapped[str] = mapped_column(sa.String(200))
    candidate_confidence: Mapped[float] = mapped_column(sa.Float)
    champion_label: Mapped[str] = mapped_column(sa.String(200))
    champion_confidence: Mapped[float] = mapped_column(sa.Float)


# --------------------------------------------------------------------------- drift evidence
# Created by revision 0008.


class DriftEvidenceRow(Base):
    """The drift evidence accumulated for a recipe's serving champion (one row per recipe;
    ``modelops.monitoring.evidence.EvidenceState`` as JSON in ``state``)."""

    __tablename__ = "drift_evidence"

    recipe: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    adapter_id: Mapped[int]
    since: Mapped[str] = mapped_column(sa.String(64))
    """ISO time the evidence started (the champion's first counted row, or a reset)."""
    first_id: Mapped[int]
    last_id: Mapped[int]
    """The last production log id counted: only rows above it are added."""
    rows: Mapped[int]
    windows: Mapped[int]
    state: Mapped[dict[str, Any]]
    version: Mapped[int]
    """Bumped by every save; a save that expected another version stores nothing."""
    updated_at: Mapped[datetime]
