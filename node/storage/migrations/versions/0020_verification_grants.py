"""verification grants: a grant kind (COPY or VERIFY) with a daily quota, the quota's counters, and the
answers to other nodes' requests (at-most-once), household checks and their targets

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-01 15:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("demands") as batch:
        batch.add_column(sa.Column("kind", sa.String(8), nullable=False, server_default="COPY"))
        batch.add_column(sa.Column("daily_quota", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("grants") as batch:
        batch.add_column(sa.Column("kind", sa.String(8), nullable=False, server_default="COPY"))
        batch.add_column(sa.Column("daily_quota", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("purpose", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("legal_basis", sa.Text(), nullable=False, server_default=""))
    op.create_table(
        "verification_usage",
        sa.Column("grant_id", sa.String(40), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("verifications", sa.Integer(), nullable=False),
        sa.Column("mismatches", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("grant_id", "day", name=op.f("pk_verification_usage")),
    )
    op.create_table(
        "rpc_answers",
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("requester_node", sa.String(128), nullable=False),
        sa.Column("answer", sa.LargeBinary(), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_rpc_answers")),
    )
    op.create_table(
        "household_checks",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("requester_code", sa.String(18), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("members", sa.Text(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("authorisation", sa.String(64), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_household_checks")),
    )
    op.create_index("ix_household_checks_requester_code", "household_checks", ["requester_code"])
    op.create_table(
        "check_targets",
        sa.Column("check_id", sa.String(40), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("findings", sa.Text(), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("answer", sa.LargeBinary(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("check_id", "target", name=op.f("pk_check_targets")),
    )


def downgrade() -> None:
    op.drop_table("check_targets")
    op.drop_index("ix_household_checks_requester_code", table_name="household_checks")
    op.drop_table("household_checks")
    op.drop_table("rpc_answers")
    op.drop_table("verification_usage")
    with op.batch_alter_table("grants") as batch:
        for column in ("legal_basis", "purpose", "daily_quota", "kind"):
            batch.drop_column(column)
    with op.batch_alter_table("demands") as batch:
        batch.drop_column("daily_quota")
        batch.drop_column("kind")
