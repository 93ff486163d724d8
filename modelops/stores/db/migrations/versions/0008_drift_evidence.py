"""Drift evidence: the sequential tests' state accumulated for each recipe's serving
champion (``drift_evidence``, one row per recipe, the state as JSON with its summary
columns beside it, and a version for compare-and-set saves).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drift_evidence",
        sa.Column("recipe", sa.String(200), nullable=False),
        sa.Column("adapter_id", sa.Integer(), nullable=False),
        sa.Column("since", sa.String(64), nullable=False),
        sa.Column("first_id", sa.Integer(), nullable=False),
        sa.Column("last_id", sa.Integer(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("windows", sa.Integer(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("recipe", name=op.f("pk_drift_evidence")),
    )


def downgrade() -> None:
    op.drop_table("drift_evidence")
