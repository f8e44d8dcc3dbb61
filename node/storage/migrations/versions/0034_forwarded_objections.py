"""forwarded objections: 校核纠错 across tiers — an objection raised at an upper node to a lower tier's record,
forwarded down to the node whose provider checks it, and its answer carried back up

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-01 22:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0034"
down_revision = "0033"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "forwarded_objections",
        sa.Column("objection_id", sa.String(64), nullable=False),
        sa.Column("peer_node", sa.String(128), nullable=False),
        sa.Column("peer_objection_id", sa.String(64), nullable=False),
        sa.Column("side", sa.String(10), nullable=False),
        sa.Column("platform", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("objection_id", "side", name=op.f("pk_forwarded_objections")),
        sa.UniqueConstraint("peer_node", "peer_objection_id", "side", name="uq_forwarded_objections_peer"),
    )


def downgrade() -> None:
    op.drop_table("forwarded_objections")
