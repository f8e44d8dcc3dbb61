"""audit_filters: an index per filter of the officers' audit search, in sequence order

The console's audit page (and QueryAudit) asks for the newest entries with one subject, department,
action, target or result. With only the primary key, a filter that matches few entries walked the whole
trail backwards (a second or more at 10^6 entries); an index on (column, sequence) answers the newest page
of any one filter from the index.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 15:00:00
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

COLUMNS = ("subject", "department_code", "action", "target", "result")


def upgrade() -> None:
    for column in COLUMNS:
        op.create_index(f"ix_audit_entries_{column}_sequence", "audit_entries", [column, "sequence"])


def downgrade() -> None:
    for column in COLUMNS:
        op.drop_index(f"ix_audit_entries_{column}_sequence", table_name="audit_entries")
