"""consumer keys: the encryption public keys consumers register (messages relayed to them are sealed to
them), and grants that say whether a consumer without one may get records in clear

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01 15:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consumer_keys",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("department_code", sa.String(18), nullable=False),
        sa.Column("algorithm", sa.String(32), nullable=False),
        sa.Column("public_pem", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_consumer_keys_department_code", "consumer_keys", ["department_code"])
    # Grants made before this revision delivered in clear; they keep doing so until reviewed again. New
    # grants deliver in clear only when the reviewer says so (DecideDemand clear_delivery).
    op.add_column("grants", sa.Column("clear_delivery", sa.Boolean, nullable=False, server_default=sa.false()))
    op.execute(sa.text("UPDATE grants SET clear_delivery = :yes").bindparams(yes=True))
    # Trusted time (RFC 3161): roots waiting for a timestamp, and the tokens that cover them in batches.
    op.create_table(
        "tsa_pending",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("ref", sa.String(128), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("timestamp_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=True),
        sa.Column("leaf", sa.Integer, nullable=True),
    )
    op.create_index("ix_tsa_pending_timestamp_id", "tsa_pending", ["timestamp_id", "created_at"])
    op.create_table(
        "tsa_tokens",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("root", sa.String(64), nullable=False),
        sa.Column("roots", sa.Integer, nullable=False),
        sa.Column("reply", sa.LargeBinary, nullable=False),
        sa.Column("gen_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stamped_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tsa_tokens")
    op.drop_index("ix_tsa_pending_timestamp_id", table_name="tsa_pending")
    op.drop_table("tsa_pending")
    with op.batch_alter_table("grants") as batch:
        batch.drop_column("clear_delivery")
    op.drop_index("ix_consumer_keys_department_code", table_name="consumer_keys")
    op.drop_table("consumer_keys")
