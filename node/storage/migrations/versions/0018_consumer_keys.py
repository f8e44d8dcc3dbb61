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


def downgrade() -> None:
    with op.batch_alter_table("grants") as batch:
        batch.drop_column("clear_delivery")
    op.drop_index("ix_consumer_keys_department_code", table_name="consumer_keys")
    op.drop_table("consumer_keys")
