"""disputes: a refused department contests a provider's refusal; the provider answers; the coordinator decides

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 15:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "disputes",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("demand_id", sa.String(40), nullable=False),
        sa.Column("requester_code", sa.String(18), nullable=False),
        sa.Column("provider_code", sa.String(18), nullable=False),
        sa.Column("resource_code", sa.String(40), nullable=False),
        sa.Column("duty_basis", sa.Text(), nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("filed_by", sa.String(200), nullable=False),
        sa.Column("provider_deadline", TIME, nullable=False),
        sa.Column("provider_answer", sa.Text(), nullable=False),
        sa.Column("provider_by", sa.String(200), nullable=False),
        sa.Column("provider_at", TIME, nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=False),
        sa.Column("conditions", sa.Text(), nullable=False),
        sa.Column("decided_by", sa.String(200), nullable=False),
        sa.Column("decided_at", TIME, nullable=True),
        sa.Column("escalated_at", TIME, nullable=True),
        sa.Column("grant_id", sa.String(40), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disputes")),
        sa.UniqueConstraint("demand_id", name=op.f("uq_disputes_demand_id")),
    )
    op.create_index("ix_disputes_state_deadline", "disputes", ["state", "provider_deadline"])


def downgrade() -> None:
    op.drop_table("disputes")
