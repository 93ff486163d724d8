"""Aliases per (recipe, taxonomy version) and the recipe-level ``serving`` alias.

``aliases`` gets ``taxonomy_version`` (not null): each existing row takes the taxonomy
version of the adapter it points at, and the unique key becomes (recipe,
taxonomy_version, name). Each recipe's champion becomes its ``serving`` adapter too: a
row named ``serving`` with the taxonomy version ``""``, kept apart by a check.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None

# Recipe-level aliases (serving) and only they have the empty taxonomy version.
SCOPE_CHECK = (
    "(name = 'serving' AND taxonomy_version = '') OR (name <> 'serving' AND taxonomy_version <> '')"
)


def upgrade() -> None:
    op.add_column("aliases", sa.Column("taxonomy_version", sa.String(200), nullable=True))
    op.execute(
        "UPDATE aliases SET taxonomy_version = ("
        "SELECT adapter_versions.taxonomy_version FROM adapter_versions "
        "WHERE adapter_versions.id = aliases.adapter_id)"
    )
    op.execute(
        "INSERT INTO aliases (recipe, taxonomy_version, name, adapter_id, updated_at) "
        "SELECT recipe, '', 'serving', adapter_id, updated_at FROM aliases "
        "WHERE name = 'champion'"
    )
    # SQLite: one table copy (env.py renders batch mode); PostgreSQL: plain ALTERs.
    with op.batch_alter_table("aliases") as batch:
        batch.alter_column("taxonomy_version", existing_type=sa.String(200), nullable=False)
        batch.drop_constraint(op.f("uq_aliases_recipe_name"), type_="unique")
        batch.create_unique_constraint(
            op.f("uq_aliases_recipe_taxonomy_version_name"),
            ["recipe", "taxonomy_version", "name"],
        )
        batch.create_check_constraint(op.f("ck_aliases_scope"), SCOPE_CHECK)


def downgrade() -> None:
    raise NotImplementedError(
        "revision 0002 cannot be downgraded: champions of several taxonomy versions and "
        "the serving alias do not fit revision 0001's one champion per recipe"
    )
