"""pull: record positions, per-platform acknowledged cursors, the cursor secret, day manifests

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 13:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("records") as batch:
        batch.add_column(sa.Column("position", BIGINT, nullable=True))
    op.create_index("ux_records_position", "records", ["position"], unique=True)
    op.create_table(
        "pull_acks",
        sa.Column("platform", sa.String(160), nullable=False),
        sa.Column("position", BIGINT, nullable=False),
        sa.Column("acked_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("platform", name=op.f("pk_pull_acks")),
    )
    op.create_table(
        "pull_secrets",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_pull_secrets")),
    )
    op.create_table(
        "day_manifests",
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("closed_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_day_manifests")),
    )


def downgrade() -> None:
    op.drop_table("day_manifests")
    op.drop_table("pull_secrets")
    op.drop_table("pull_acks")
    op.drop_index("ux_records_position", table_name="records")
    with op.batch_alter_table("records") as batch:
        batch.drop_column("position")
