"""search_fields: SQLite's text index in four columns (name, summary, items and keywords, attributes)

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-02 01:10:00

Relevance order (name before summary before items and keywords) needs to know in which field a word
matches; one ``terms`` column could not say. The contentless FTS5 table is rebuilt with a column per
field (node/storage/search_index.py, ``fts_columns``) from the stored rows, under the same search ids.
``resource_search_generation`` counts the writes to the index: a count of matches is reused only for the
generation it was counted on. It starts at a random value, so a database recreated at the same path never
meets a process's counts of the one before. PostgreSQL: nothing (its rank is computed from the rows).
"""

import secrets

from alembic import op
from sqlalchemy.engine import Connection

from node.storage.search_index import fts_columns, fts_document, indexed_version

revision = "0035"
down_revision = "0034"
branch_labels = None
depends_on = None

_ROWS = ("SELECT v.search_id, v.code, v.version, v.name, v.document, v.search_text, v.classification, v.share_type, "
         "v.open_type, v.update_cycle, v.provider_code, r.status, r.latest_version, r.published_version "
         "FROM resource_versions v JOIN resources r ON r.code = v.code WHERE v.search_id IS NOT NULL "
         "ORDER BY v.search_id")


def _entries(bind: Connection) -> list:
    return [(row["search_id"], indexed_version(row, row["status"], latest_version=row["latest_version"],
                                               published_version=row["published_version"]))
            for row in bind.exec_driver_sql(_ROWS).mappings()]


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    bind.exec_driver_sql("DROP TABLE resource_search")
    bind.exec_driver_sql("CREATE VIRTUAL TABLE resource_search USING fts5(name, summary, rest, attributes, "
                         "content='', tokenize='ascii')")
    rows = [(search_id, *fts_columns(entry)) for search_id, entry in _entries(bind)]
    if rows:
        bind.exec_driver_sql("INSERT INTO resource_search (rowid, name, summary, rest, attributes) "
                             "VALUES (?, ?, ?, ?, ?)", rows)
    bind.exec_driver_sql("CREATE TABLE resource_search_generation (generation INTEGER NOT NULL)")
    bind.exec_driver_sql("INSERT INTO resource_search_generation (generation) VALUES (?)",
                         (secrets.randbits(62),))


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    bind.exec_driver_sql("DROP TABLE resource_search_generation")
    bind.exec_driver_sql("DROP TABLE resource_search")
    bind.exec_driver_sql("CREATE VIRTUAL TABLE resource_search USING fts5(terms, content='', tokenize='ascii')")
    rows = [(search_id, fts_document(entry)) for search_id, entry in _entries(bind)]
    if rows:
        bind.exec_driver_sql("INSERT INTO resource_search (rowid, terms) VALUES (?, ?)", rows)
