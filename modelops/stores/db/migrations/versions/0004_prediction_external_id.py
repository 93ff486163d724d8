"""Production log: the sender's reference of a prediction (a batch file's ``id``).

``predictions`` gets ``external_id`` (nullable): existing rows have none.

Revision ID: 0004
Revises: 0003
Create Date: 2025-04-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("predictions", sa.Column("external_id", sa.String(200), nullable=True))


def downgrade() -> None:
    # SQLite: one table copy (env.py renders batch mode); PostgreSQL: a plain ALTER.
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("external_id")
