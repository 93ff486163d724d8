"""Serving: the base that answered a prediction, and shadow scores of candidates.

``predictions`` gets ``base_model`` (nullable: the catalog reference of the base the
adapter ran on; rows logged before have none). ``shadow_predictions`` holds what a
recipe's candidate said about live traffic next to the champion's answer.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("predictions", sa.Column("base_model", sa.String(200), nullable=True))
    op.create_table(
        "shadow_predictions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recipe", sa.String(200), nullable=False),
        sa.Column("candidate_adapter_id", sa.Integer(), nullable=False),
        sa.Column("champion_adapter_id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.String(64), nullable=True),
        sa.Column("text_sha256", sa.String(64), nullable=False),
        sa.Column("candidate_label", sa.String(200), nullable=False),
        sa.Column("candidate_confidence", sa.Float(), nullable=False),
        sa.Column("champion_label", sa.String(200), nullable=False),
        sa.Column("champion_confidence", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shadow_predictions")),
    )
    op.create_index(
        op.f("ix_shadow_predictions_recipe_candidate_adapter_id"),
        "shadow_predictions",
        ["recipe", "candidate_adapter_id"],
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_shadow_predictions_recipe_candidate_adapter_id"), table_name="shadow_predictions"
    )
    op.drop_table("shadow_predictions")
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("base_model")
