"""forwarded demands: 回流 — demands a lower node forwards through its uplink and the upper node decides

Revision ID: 0027
Revises: 0024
Create Date: 2026-12-01 18:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "forwarded_demands",
        sa.Column("demand_id", sa.String(40), nullable=False),
        sa.Column("peer_node", sa.String(128), nullable=False),
        sa.Column("peer_demand_id", sa.String(40), nullable=False),
        sa.Column("side", sa.String(10), nullable=False),
        sa.Column("platform", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("demand_id", name=op.f("pk_forwarded_demands")),
        sa.UniqueConstraint("peer_node", "peer_demand_id", "side", name="uq_forwarded_demands_peer"),
    )


def downgrade() -> None:
    op.drop_table("forwarded_demands")
