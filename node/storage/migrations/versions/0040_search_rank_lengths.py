"""search ranks: PostgreSQL's narrow search rows say where the name and the summary end, and index their terms

Revision ID: 0040
Revises: 0038
Create Date: 2026-12-02 05:00:00

Relevance order (name before summary before items) ranked every match by joining its ~1.8 KB
``resource_versions`` row and parsing its document for the summary (~1,800 ms p99 at 10^5). Now the
``catalog_search`` row has the lengths of its lower-cased name and summary (its ``search_text`` starts with
them, search_index.IndexedVersion), so a rank is two ``substr`` of the row a search reads anyway, and the
terms of the name (``name_terms``) and of name and summary (``lead_terms``) under GIN indexes of their own,
so a rank's page is found among that rank's candidates: an item word in every resource and in no name
answers rank 0 from an empty posting list instead of reading all its matches. Filled from the stored rows
with Python's ``lower()`` and search_index.text_terms (those that wrote ``search_text``: a database's
``lower()`` may differ for a few characters), through COPY into a temporary table and one UPDATE.

Also the ``catalog_search`` counter of ``cache_generations`` (node/storage/generations.py): every change of
the narrow rows moves it on, so a process may reuse a count of matches made at the same counter.
SQLite keeps its FTS5 field columns: nothing changes there.
"""

import json

from alembic import op

from node.storage.search_index import text_terms

revision = "0040"
down_revision = "0038"
branch_labels = None
depends_on = None


def _literal(values: list[str]) -> str:
    if not values:
        return "{}"
    return "{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "}"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    sql = bind.exec_driver_sql
    sql("INSERT INTO cache_generations (name, generation) VALUES ('catalog_search', 1) ON CONFLICT DO NOTHING")
    sql("ALTER TABLE catalog_search ADD COLUMN name_length INTEGER NOT NULL DEFAULT 0, "
        "ADD COLUMN summary_length INTEGER NOT NULL DEFAULT 0, "
        "ADD COLUMN name_terms TEXT[] NOT NULL DEFAULT '{}', ADD COLUMN lead_terms TEXT[] NOT NULL DEFAULT '{}'")
    rows = sql("SELECT code, version, name, document FROM resource_versions ORDER BY code, version").all()
    if rows:
        sql("CREATE TEMPORARY TABLE search_ranks (code TEXT, version INTEGER, name_length INTEGER, "
            "summary_length INTEGER, name_terms TEXT[], lead_terms TEXT[]) ON COMMIT DROP")
        cursor = bind.connection.driver_connection.cursor()
        with cursor.copy("COPY search_ranks FROM STDIN") as copy:
            for row in rows:
                name, summary = row.name.lower(), json.loads(row.document).get("summary", "").lower()
                copy.write_row((row.code, row.version, len(name), len(summary),
                                _literal(sorted(text_terms(name))), _literal(sorted(text_terms(name + "\n" + summary)))))
        sql("UPDATE catalog_search s SET name_length = l.name_length, summary_length = l.summary_length, "
            "name_terms = l.name_terms, lead_terms = l.lead_terms FROM search_ranks l "
            "WHERE s.code = l.code AND s.version = l.version")
    sql("CREATE INDEX ix_catalog_search_name_terms ON catalog_search USING gin (name_terms)")
    sql("CREATE INDEX ix_catalog_search_lead_terms ON catalog_search USING gin (lead_terms)")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    bind.exec_driver_sql("DELETE FROM cache_generations WHERE name = 'catalog_search'")
    bind.exec_driver_sql("ALTER TABLE catalog_search DROP COLUMN name_length, DROP COLUMN summary_length, "
                         "DROP COLUMN name_terms, DROP COLUMN lead_terms")
