"""encryption at rest: data keys wrapped by the node's key-encryption key; a key id on every sealed row

Revision ID: 0017
Revises: 0015
Create Date: 2026-12-01 14:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "data_keys",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("kek_id", sa.String(32), nullable=False),
        sa.Column("wrapped", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_data_keys_scope", "data_keys", ["scope", "period"])
    # Nullable: rows written before this revision stay readable (no key id: clear text) until the
    # re-encryption job (`exnode keys reencrypt`) seals them.
    op.add_column("records", sa.Column("payload_key", sa.String(32), nullable=True))
    op.add_column("outbox", sa.Column("body_key", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("body_key")
    with op.batch_alter_table("records") as batch:
        batch.drop_column("payload_key")
    op.drop_index("ix_data_keys_scope", table_name="data_keys")
    op.drop_table("data_keys")
