"""objections: 校核纠错 — objections to shared records, their check by the provider, the disputed flag;
tier_reports: the monthly reports lower nodes sent upward (统计月报)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 15:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "objections",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("provider_code", sa.String(18), nullable=False),
        sa.Column("resource_code", sa.String(40), nullable=False),
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("item", sa.String(100), nullable=False),
        sa.Column("raiser_code", sa.String(18), nullable=False),
        sa.Column("raised_by", sa.String(200), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("attachments", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("deadline", TIME, nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("answered_by", sa.String(200), nullable=False),
        sa.Column("answered_at", TIME, nullable=True),
        sa.Column("corrected_by", sa.String(64), nullable=False),
        sa.Column("escalated_at", TIME, nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_objections")),
    )
    op.create_index("ix_objections_record", "objections", ["provider_code", "resource_code", "record_id", "state"])
    op.create_index("ix_objections_state_deadline", "objections", ["state", "deadline"])
    op.create_table(
        "tier_reports",
        sa.Column("sender_node", sa.String(128), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("xml", sa.Text(), nullable=False),
        sa.Column("generated", sa.String(40), nullable=False),
        sa.Column("received_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("sender_node", "month", name=op.f("pk_tier_reports")),
    )


def downgrade() -> None:
    op.drop_table("tier_reports")
    op.drop_table("objections")
