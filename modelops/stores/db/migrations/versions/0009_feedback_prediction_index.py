"""Production log: an index on ``feedback.prediction_id``.

The drift check reads the true labels of its window's predictions by prediction id
(``ProductionLog.labels_for``). Before, it read every feedback row of the recipe and
matched them in memory, a cost that grew with all the feedback ever given; PostgreSQL
does not index foreign-key columns by itself.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_feedback_prediction_id", "feedback", ["prediction_id"])


def downgrade() -> None:
    op.drop_index("ix_feedback_prediction_id", table_name="feedback")
