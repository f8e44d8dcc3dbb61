"""cache generations: a counter per kind of cached row (grants, consumer keys), bumped in the transaction
that changes such a row, so every process reads one small row to know whether its cache still holds

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-02 01:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0036"
down_revision = "0035"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "cache_generations",
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_cache_generations")),
    )
    op.bulk_insert(table, [{"name": "grants", "generation": 1}, {"name": "consumer_keys", "generation": 1}])


def downgrade() -> None:
    op.drop_table("cache_generations")
