"""Registry: adapter versions, aliases, audit log.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None

STATUSES = ("candidate", "champion", "retired", "rejected")
ACTIONS = ("register", "promote", "rollback", "evaluate", "reject")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "adapter_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recipe", sa.String(200), nullable=False),
        sa.Column("taxonomy_version", sa.String(200), nullable=False),
        sa.Column("base_model", sa.String(200), nullable=False),
        sa.Column("base_model_sha256", sa.String(64), nullable=False),
        sa.Column("dataset_fingerprint", sa.String(128), nullable=False),
        sa.Column("recipe_fingerprint", sa.String(128), nullable=False),
        sa.Column("artifact_uri", sa.Text(), nullable=False),
        sa.Column("artifact_sha256", sa.String(64), nullable=False),
        sa.Column("weights_sha256", sa.String(64), nullable=False),
        sa.Column("lineage", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("gate", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_adapter_versions")),
        sa.CheckConstraint(_in("status", STATUSES), name=op.f("ck_adapter_versions_status")),
    )
    op.create_index(op.f("ix_adapter_versions_recipe"), "adapter_versions", ["recipe"])
    op.create_index(
        op.f("ix_adapter_versions_weights_sha256"), "adapter_versions", ["weights_sha256"]
    )

    op.create_table(
        "aliases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recipe", sa.String(200), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("adapter_id", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_aliases")),
        sa.ForeignKeyConstraint(
            ["adapter_id"],
            ["adapter_versions.id"],
            name=op.f("fk_aliases_adapter_id_adapter_versions"),
        ),
        # Its index (recipe first) serves lookups by recipe.
        sa.UniqueConstraint("recipe", "name", name=op.f("uq_aliases_recipe_name")),
    )
    op.create_index(op.f("ix_aliases_adapter_id"), "aliases", ["adapter_id"])

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("who", sa.String(200), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("recipe", sa.String(200), nullable=False),
        sa.Column("adapter_id", sa.Integer(), nullable=True),
        sa.Column("previous_adapter_id", sa.Integer(), nullable=True),
        sa.Column("why", sa.Text(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        sa.ForeignKeyConstraint(
            ["adapter_id"],
            ["adapter_versions.id"],
            name=op.f("fk_audit_log_adapter_id_adapter_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["previous_adapter_id"],
            ["adapter_versions.id"],
            name=op.f("fk_audit_log_previous_adapter_id_adapter_versions"),
        ),
        sa.CheckConstraint(_in("action", ACTIONS), name=op.f("ck_audit_log_action")),
    )
    op.create_index(op.f("ix_audit_log_recipe"), "audit_log", ["recipe"])
    op.create_index(op.f("ix_audit_log_adapter_id"), "audit_log", ["adapter_id"])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("aliases")
    op.drop_table("adapter_versions")
