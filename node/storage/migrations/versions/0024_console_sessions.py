"""console sessions in the database, so every process of a node (replicas behind one address) sees the
same sessions and a sign-out or timeout ends a session everywhere at once

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-01 17:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("id_hash", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("department_code", sa.String(18), nullable=False),
        sa.Column("roles", sa.Text(), nullable=False),
        sa.Column("issuer", sa.String(200), nullable=False),
        sa.Column("token_id", sa.String(200), nullable=False),
        sa.Column("token_expires_at", sa.Float(), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("via", sa.String(8), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("last_seen", sa.Float(), nullable=False),
        sa.Column("expires", sa.Float(), nullable=False),
        sa.Column("flash", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_console_sessions")),
    )
    op.create_index("ix_console_sessions_expires", "console_sessions", ["expires"])


def downgrade() -> None:
    op.drop_index("ix_console_sessions_expires", table_name="console_sessions")
    op.drop_table("console_sessions")
