"""catalog_events: the feed's columns (name, classification) and the fanout publisher's cursor

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 13:00:00

The event log itself exists since 0001 (written in each catalog change's transaction); the feed adds
what watchers filter and show without a join (name, classification, backfilled from the versions), and
the position up to which the RabbitMQ fanout publisher has had its messages confirmed.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("catalog_events") as batch:
        batch.add_column(sa.Column("name", sa.String(200), nullable=False, server_default=""))
        batch.add_column(sa.Column("classification", sa.String(16), nullable=False, server_default=""))
    events = sa.table("catalog_events", sa.column("code"), sa.column("version"), sa.column("name"),
                      sa.column("classification"))
    versions = sa.table("resource_versions", sa.column("code"), sa.column("version"), sa.column("name"),
                        sa.column("classification"))
    match = sa.and_(versions.c.code == events.c.code, versions.c.version == events.c.version)
    op.execute(events.update().values(
        name=sa.select(versions.c.name).where(match).scalar_subquery(),
        classification=sa.select(versions.c.classification).where(match).scalar_subquery(),
    ))
    op.create_table(
        "catalog_feed_cursors",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("position", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_catalog_feed_cursors")),
    )


def downgrade() -> None:
    op.drop_table("catalog_feed_cursors")
    with op.batch_alter_table("catalog_events") as batch:
        batch.drop_column("classification")
        batch.drop_column("name")
