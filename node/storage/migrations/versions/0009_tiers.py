"""tiers: foreign catalog entries (origin node), provenance of relayed records, uplink cursors

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 13:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("resources") as batch:
        batch.add_column(sa.Column("origin_node", sa.String(64), nullable=False, server_default=""))
    op.create_table(
        "relayed_records",
        sa.Column("provider_code", sa.String(18), nullable=False),
        sa.Column("resource_code", sa.String(40), nullable=False),
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("sender_node", sa.String(128), nullable=False),
        sa.Column("sender_batch_id", sa.String(128), nullable=False),
        sa.Column("hops", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("provider_code", "resource_code", "record_id", name=op.f("pk_relayed_records")),
    )
    op.create_table(
        "tier_cursors",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("position", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_tier_cursors")),
    )


def downgrade() -> None:
    op.drop_table("tier_cursors")
    op.drop_table("relayed_records")
    with op.batch_alter_table("resources") as batch:
        batch.drop_column("origin_node")
