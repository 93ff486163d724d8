"""Production log: the client's ``X-Request-ID`` beside the server's id of a request.

The HTTP service now makes the id of every request itself (``predictions.batch_id``,
which its prediction ids derive from), so two clients that send the same
``X-Request-ID`` cannot share prediction ids; the client's id is kept in
``predictions.client_request_id`` (nullable: rows logged before, and rows of batch
files, have none).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("predictions", sa.Column("client_request_id", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("client_request_id")
