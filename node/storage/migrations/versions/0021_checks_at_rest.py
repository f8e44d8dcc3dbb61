"""household checks and answers to other nodes encrypted at rest: a data key id on each sealed row; the
next hop of a foreign catalog entry (requests across two tiers)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-01 17:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: rows written before this revision have no key id and stay readable in clear.
    op.add_column("household_checks", sa.Column("data_key", sa.String(32), nullable=True))
    op.add_column("check_targets", sa.Column("data_key", sa.String(32), nullable=True))
    op.add_column("rpc_answers", sa.Column("data_key", sa.String(32), nullable=True))
    op.create_index("ix_rpc_answers_answered_at", "rpc_answers", ["answered_at"])
    op.create_index("ix_household_checks_created_at", "household_checks", ["created_at"])
    op.add_column("resources", sa.Column("via_node", sa.String(64), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("resources") as batch:
        batch.drop_column("via_node")
    op.drop_index("ix_household_checks_created_at", table_name="household_checks")
    op.drop_index("ix_rpc_answers_answered_at", table_name="rpc_answers")
    for table in ("rpc_answers", "check_targets", "household_checks"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("data_key")
