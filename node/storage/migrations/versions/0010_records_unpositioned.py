"""records_unpositioned: a partial index of the records the pull's sequencer has still to number

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

UNPOSITIONED = sa.text("position IS NULL")


def upgrade() -> None:
    op.create_index("ix_records_unpositioned", "records", ["received_at", "batch_id", "sequence", "record_id"],
                    postgresql_where=UNPOSITIONED, sqlite_where=UNPOSITIONED)


def downgrade() -> None:
    op.drop_index("ix_records_unpositioned", table_name="records")
