"""receipts: receivers' signed receipts per batch

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 11:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "receipts",
        sa.Column("batch_id", sa.String(64), nullable=False),
        sa.Column("receiver_code", sa.String(18), nullable=False),
        sa.Column("record_count", sa.Integer(), nullable=False),
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("batch_id", "receiver_code", name=op.f("pk_receipts")),
    )


def downgrade() -> None:
    op.drop_table("receipts")
