"""Production log: each prediction's out-of-scope score and flag.

Every prediction now carries the serving adapter's out-of-scope score and whether it
passed the adapter's calibrated threshold (``modelops.monitoring.out_of_scope``); the
drift check reads them back instead of scoring the window again. Both nullable: rows
logged before, and rows of adapters trained without an out-of-scope model, have none.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("predictions", sa.Column("oos_score", sa.Float, nullable=True))
    op.add_column("predictions", sa.Column("out_of_scope", sa.Boolean, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("out_of_scope")
        batch.drop_column("oos_score")
