"""catalog_search_index: the bigram text index of resource versions, and indexes for every list filter

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 14:30:00

Search was ``LIKE '%word%'`` over every version (a full scan: 118–412 ms at 10^5 resources). The index
(node/storage/search_index.py) is a contentless FTS5 table on SQLite and a GIN-indexed ``bigint[]`` on
PostgreSQL; this migration computes the terms of the versions already stored, then builds the indexes
once (faster than growing them row by row). The filter indexes let a rare provider, status, open type,
update cycle or share type be found (and counted) without reading the whole catalog.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

from node.storage.search_index import array_terms, fts_document, indexed_version

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BATCH = 2_000
FILTER_INDEXES = (
    ("ix_resource_versions_open_type", "resource_versions", ["open_type"]),
    ("ix_resource_versions_update_cycle", "resource_versions", ["update_cycle"]),
    ("ix_resource_versions_share_type", "resource_versions", ["share_type"]),
    ("ix_resources_status", "resources", ["status", "code"]),
)


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    with op.batch_alter_table("resource_versions") as batch:
        batch.add_column(sa.Column("search_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True))
        batch.add_column(sa.Column("search_terms", ARRAY(sa.Text()).with_variant(sa.Text(), "sqlite"),
                                   nullable=True))
    versions = sa.table("resource_versions", sa.column("code"), sa.column("version"), sa.column("search_text"),
                        sa.column("classification"), sa.column("share_type"), sa.column("open_type"),
                        sa.column("update_cycle"), sa.column("provider_code"), sa.column("search_id"),
                        sa.column("search_terms"))
    heads = sa.table("resources", sa.column("code"), sa.column("status"), sa.column("latest_version"),
                     sa.column("published_version"))
    if sqlite:
        bind.exec_driver_sql(
            "CREATE VIRTUAL TABLE resource_search USING fts5(terms, content='', tokenize='ascii')")
    after: tuple[str, int] = ("", 0)
    next_id = 1
    while True:
        rows = bind.execute(
            sa.select(versions.c.code, versions.c.version, versions.c.search_text, versions.c.classification,
                      versions.c.share_type, versions.c.open_type, versions.c.update_cycle, versions.c.provider_code,
                      heads.c.status, heads.c.latest_version, heads.c.published_version)
            .select_from(versions.join(heads, heads.c.code == versions.c.code))
            .where(sa.tuple_(versions.c.code, versions.c.version) > sa.tuple_(*after))
            .order_by(versions.c.code, versions.c.version).limit(BATCH)
        ).all()
        if not rows:
            break
        after = (rows[-1].code, rows[-1].version)
        if sqlite:
            ids = range(next_id, next_id + len(rows))
            next_id += len(rows)
            bind.execute(
                versions.update().where(versions.c.code == sa.bindparam("c"), versions.c.version == sa.bindparam("v"))
                .values(search_id=sa.bindparam("i")),
                [{"c": row.code, "v": row.version, "i": i} for row, i in zip(rows, ids, strict=True)])
            bind.exec_driver_sql("INSERT INTO resource_search (rowid, terms) VALUES (?, ?)", [
                (i, fts_document(indexed_version(row._mapping, row.status, latest_version=row.latest_version,
                                                 published_version=row.published_version)))
                for row, i in zip(rows, ids, strict=True)])
        else:
            bind.execute(
                versions.update().where(versions.c.code == sa.bindparam("c"), versions.c.version == sa.bindparam("v"))
                .values(search_terms=sa.bindparam("t", type_=ARRAY(sa.Text()))),
                [{"c": row.code, "v": row.version,
                  "t": array_terms(indexed_version(row._mapping, row.status, latest_version=row.latest_version,
                                                   published_version=row.published_version))} for row in rows])
    with op.batch_alter_table("resource_versions") as batch:
        batch.create_index("ux_resource_versions_search_id", ["search_id", "code", "version"], unique=True)
    if not sqlite:
        op.create_index("ix_resource_versions_search_terms", "resource_versions", ["search_terms"],
                        postgresql_using="gin")
    for name, table, columns in FILTER_INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in FILTER_INDEXES:
        op.drop_index(name, table_name=table)
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        bind.exec_driver_sql("DROP TABLE resource_search")
    else:
        op.drop_index("ix_resource_versions_search_terms", table_name="resource_versions")
    with op.batch_alter_table("resource_versions") as batch:
        batch.drop_index("ux_resource_versions_search_id")
        batch.drop_column("search_terms")
        batch.drop_column("search_id")
