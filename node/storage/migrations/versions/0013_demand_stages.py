"""demand_stages: working-day deadlines per stage (compliance review, provider answer) and escalation

Existing demands keep the deadline they had: an open or decided review's answer deadline is its
review_deadline (calendar days, as it was set), and a reviewer's decision is its answer time.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 14:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)
REVIEWED = ("UNDER_REVIEW", "APPROVED", "REJECTED", "FULFILLED", "EXPIRED")
ANSWERED = ("APPROVED", "REJECTED")


def upgrade() -> None:
    with op.batch_alter_table("demands") as batch:
        # COMPLIANCE_REVIEW is 17 characters
        batch.alter_column("state", existing_type=sa.String(16), type_=sa.String(24), existing_nullable=False)
        batch.add_column(sa.Column("compliance_deadline", TIME, nullable=True))
        batch.add_column(sa.Column("compliance_at", TIME, nullable=True))
        batch.add_column(sa.Column("compliance_by", sa.String(200), nullable=False, server_default=""))
        batch.add_column(sa.Column("answer_deadline", TIME, nullable=True))
        batch.add_column(sa.Column("answered_at", TIME, nullable=True))
        batch.add_column(sa.Column("escalated_at", TIME, nullable=True))
        batch.add_column(sa.Column("escalated_stage", sa.String(20), nullable=False, server_default=""))
    demands = sa.table("demands", sa.column("state", sa.String), sa.column("decided_by", sa.String),
                       sa.column("review_deadline", TIME), sa.column("updated_at", TIME),
                       sa.column("answer_deadline", TIME), sa.column("answered_at", TIME))
    by_person = sa.not_(demands.c.decided_by.like("rule:%"))
    op.execute(demands.update().where(demands.c.state.in_(REVIEWED), by_person)
               .values(answer_deadline=demands.c.review_deadline))
    op.execute(demands.update().where(demands.c.state.in_(ANSWERED), by_person, demands.c.decided_by != "")
               .values(answered_at=demands.c.updated_at))
    op.create_index("ix_demands_state_deadline", "demands", ["state", "review_deadline"])


def downgrade() -> None:
    op.drop_index("ix_demands_state_deadline", table_name="demands")
    with op.batch_alter_table("demands") as batch:
        for column in ("escalated_stage", "escalated_at", "answered_at", "answer_deadline", "compliance_by",
                       "compliance_at", "compliance_deadline"):
            batch.drop_column(column)
        batch.alter_column("state", existing_type=sa.String(24), type_=sa.String(16), existing_nullable=False)
