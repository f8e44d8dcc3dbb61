"""tier disputes: 校核纠错 across tiers — the disputed mark of a record a lower node relayed here, as the
lower node's signed notices set and clear it per objection

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-01 21:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tier_disputes",
        sa.Column("provider_code", sa.String(18), nullable=False),
        sa.Column("resource_code", sa.String(40), nullable=False),
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("objection_id", sa.String(64), nullable=False),
        sa.Column("sender_node", sa.String(128), nullable=False),
        sa.Column("disputed", sa.Boolean(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("provider_code", "resource_code", "record_id", "objection_id",
                                name=op.f("pk_tier_disputes")),
    )
    op.create_index("ix_tier_disputes_open", "tier_disputes", ["disputed"])


def downgrade() -> None:
    op.drop_index("ix_tier_disputes_open", table_name="tier_disputes")
    op.drop_table("tier_disputes")
