"""audit_search_indexes: the audit trail's query filters served by indexes, newest first

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 15:00:00

``exnode audit query`` (and the console's audit pages) filter by subject, department, action, target or
result and read newest first (``ORDER BY sequence DESC LIMIT n``). Without an index a rare value meant
reading the whole trail (10^7 entries at national scale); an index on (column, sequence) gives the
newest matching entries directly. The time range already has ``ix_audit_entries_at``.
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

COLUMNS = ("subject", "department_code", "action", "target", "result")


def upgrade() -> None:
    for column in COLUMNS:
        op.create_index(f"ix_audit_entries_{column}_sequence", "audit_entries", [column, "sequence"])


def downgrade() -> None:
    for column in COLUMNS:
        op.drop_index(f"ix_audit_entries_{column}_sequence", table_name="audit_entries")
