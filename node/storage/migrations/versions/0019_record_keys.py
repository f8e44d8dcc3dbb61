"""record_keys: the current-record index of keyed resources (QueryRecords, VerifyClaim)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-01 14:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "record_keys",
        sa.Column("resource_code", sa.String(40), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("provider_code", sa.String(18), nullable=False),
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("sequence", BIGINT, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("resource_code", "key_hash", name=op.f("pk_record_keys")),
    )
    op.create_index("ix_record_keys_record", "record_keys", ["provider_code", "resource_code", "record_id"])


def downgrade() -> None:
    op.drop_index("ix_record_keys_record", table_name="record_keys")
    op.drop_table("record_keys")
