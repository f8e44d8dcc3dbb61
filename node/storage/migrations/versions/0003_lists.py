"""lists: explicit obligations, demands, grants and deliveries

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 10:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "obligations",
        sa.Column("department_code", sa.String(18), nullable=False),
        sa.Column("resource_code", sa.String(40), nullable=False),
        sa.Column("resource_name", sa.String(200), nullable=False),
        sa.Column("update_cycle", sa.String(16), nullable=False),
        sa.Column("grace_days", sa.Integer(), nullable=True),
        sa.Column("contact", sa.String(200), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("department_code", "resource_code", name=op.f("pk_obligations")),
    )
    op.create_table(
        "demands",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("requester_code", sa.String(18), nullable=False),
        sa.Column("provider_code", sa.String(18), nullable=False),
        sa.Column("resource_code", sa.String(40), nullable=False),
        sa.Column("resource_name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("items", sa.Text(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("legal_basis", sa.Text(), nullable=False),
        sa.Column("frequency", sa.String(16), nullable=False),
        sa.Column("contact", sa.String(200), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("decided_by", sa.String(200), nullable=False),
        sa.Column("grant_id", sa.String(40), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("review_deadline", TIME, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_demands")),
    )
    for column in ("requester_code", "provider_code", "state"):
        op.create_index(op.f(f"ix_demands_{column}"), "demands", [column])
    op.create_table(
        "grants",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("consumer_code", sa.String(18), nullable=False),
        sa.Column("provider_code", sa.String(18), nullable=False),
        sa.Column("resource_code", sa.String(40), nullable=False),
        sa.Column("items", sa.Text(), nullable=False),
        sa.Column("masking", sa.Text(), nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        sa.Column("demand_id", sa.String(40), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("revoked_at", TIME, nullable=True),
        sa.Column("revoked_reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grants")),
    )
    for column in ("consumer_code", "provider_code", "resource_code"):
        op.create_index(op.f(f"ix_grants_{column}"), "grants", [column])
    op.create_table(
        "deliveries",
        sa.Column("id", BIGINT, autoincrement=True, nullable=False),
        sa.Column("provider_code", sa.String(18), nullable=False),
        sa.Column("resource_code", sa.String(40), nullable=False),
        sa.Column("consumer_code", sa.String(18), nullable=False),
        sa.Column("delivered_at", TIME, nullable=False),
        sa.Column("batch_id", sa.String(64), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
    )
    op.create_index("ix_deliveries_provider_resource", "deliveries", ["provider_code", "resource_code", "delivered_at"])


def downgrade() -> None:
    op.drop_table("deliveries")
    op.drop_table("grants")
    op.drop_table("demands")
    op.drop_table("obligations")
