"""Catalog persistence: resources, their versions and the catalog event log, in SQLAlchemy Core."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import (
    Table,
    func,
    insert,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Row

from catalog.interchange import enum_member, metadata_document, metadata_from_trusted_dict
from catalog.model import (
    Classification,
    OpenType,
    Resource,
    ResourceMetadata,
    ResourceStatus,
    ResourceVersion,
    ShareType,
    UpdateCycle,
    VersionState,
)
from node.storage import generations, raw
from node.storage.database import sqlite_transaction_wrote
from node.storage.search_index import (
    OUT_OF_LINE,
    RELEVANCE_RANKS,
    SEARCH_ID_SPACING,
    SEARCH_ID_STEP,
    IndexedVersion,
    allocate_search_ids,
    fts_columns,
    fts_match,
    fts_rank_match,
    indexed_version,
    text_terms,
    word_terms,
)
from node.storage.tables import (
    catalog_events,
    catalog_feed_cursors,
    catalog_search,
    resource_versions,
    resources,
)


@dataclass(frozen=True)
class ResourceFilter:
    """List/search filters; ``query`` words must all occur in name, summary, item names or keywords."""

    classification: Classification | None = None
    provider_code: str = ""
    share_type: ShareType | None = None
    open_type: OpenType | None = None
    update_cycle: UpdateCycle | None = None
    status: ResourceStatus | None = None
    query: str = ""
    code_prefix: str = ""
    visible_to: str | None = None
    """When set, drafts are listed only if this department provides them (policy decides the value)."""

PUBLIC_EVENT_KINDS = ("PUBLISHED", "RETIRED")
"""Events every department may see; CREATED and UPDATED concern drafts, seen by their own department."""
EVENT_LOG_LOCK = 0x65786E6F6465_0006
"""The PostgreSQL advisory lock key that serialises the appends to catalog_events (one database per node)."""


@dataclass(frozen=True)
class EventFilter:
    """Which catalog events a feed reader gets."""

    visible_to: str | None = None
    """When set, draft events (CREATED, UPDATED) only of this department (policy decides the value)."""
    public_only: bool = False
    provider_code: str = ""
    classification: Classification | None = None
    code_prefix: str = ""


def _escape_like(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")

COUNT_CACHE = 4_096
"""SQLite: counts kept per process (database, FTS5 expression and bound → index generation and count)."""
_COUNTS: dict[tuple[str, str, int], tuple[int, int]] = {}
_COUNTS_LOCK = threading.Lock()
_PG_COUNTS: dict[tuple, tuple[int, int]] = {}
"""PostgreSQL: counts kept per process ((database, conditions, values, limit) → generation and count)."""
METADATA_CACHE = 4_096
"""Decoded documents kept per process (~5 KB each: some 20 MB)."""
FTS_BULK = 1_000
"""New resources from which an insert is a bulk load (an import file) for the FTS5 table's settings."""
FTS_PENDING_BYTES = 16 << 20
"""FTS5 ``hashsize``: the new terms of a 20,000-resource import (MAX_IMPORT) stay in memory until commit."""
RESPACE_RADIUS = 32
"""SQLite: stored versions each side of a used-up search-id gap that a respacing rewrites first (the
window grows fourfold until its id range has room)."""
WALK_WINDOW = 2_048
"""PostgreSQL: how many shown versions a page of a word search reads in code order (an eighth of it
first) before it leaves the page to the GIN index (a word in one version in 40 fills a page)."""
WALK_MATCHES = 10_001
"""PostgreSQL: from this many matches (a remembered count: services.catalog.COUNT_LIMIT + 1) a word's page
first walks in code order. Fewer are read from the GIN index and sorted faster than walks find a page of
them: codes cluster by classification and provider, so a word in one resource in ten often has no match in
the first 2,048 (measured at 10^5: walks of 256 and 2,048 rows 3.5 ms, then the GIN index anyway 4–8 ms;
the GIN index alone 6 ms)."""
FIRST_PAGE_COUNT = 10_001
"""PostgreSQL counts a first page's matches on its way, up to this (services.catalog.COUNT_LIMIT + 1:
the service shows "10,000+" for it; a test holds the two together)."""


def _sqlite_time(value: str | None) -> dt.datetime | None:
    """A timestamp as SQLite keeps it (UTC, no zone: tables.UTCDateTime), read by the driver directly."""
    return None if value is None else dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """A PostgreSQL timestamp as tables.UTCDateTime gives it (aware, in UTC), read by the driver directly."""
    return None if value is None else value.astimezone(dt.UTC)


@lru_cache(maxsize=METADATA_CACHE)
def _metadata_of(document: str) -> ResourceMetadata:
    """The metadata a stored document holds, remembered by the document's text.

    Why: rebuilding a page's 51 documents (JSON, then the dataclasses of metadata and items) was 86 % of
    a SQLite search page's time (cProfile at 10^5 resources), some 50 times the FTS5 query; the pages people open
    again (the first pages of common searches, a resource read after it was listed) now cost a dict
    look-up each. Keyed by the text itself, not by code and version: a draft's row is rewritten in place,
    and equal text is the same metadata (a frozen dataclass, shared safely)."""
    return metadata_from_trusted_dict(json.loads(document))


@lru_cache(maxsize=METADATA_CACHE)
def _sqlite_resource(row: tuple) -> Resource:
    """A resource as one SQLite row of ``_sqlite_resources`` gives it, remembered by the row's values.

    Why: after the documents (``_metadata_of``), building a page's 51 resources (three timestamps parsed,
    two enums, three objects each) was ~0.4 ms of a ~1 ms SQLite search page at 10^5, twice the index's
    own time; equal values are the same frozen resource, shared safely."""
    code, status, published_version, retired, origin, version, state, document, created, published = row
    return Resource(code, enum_member(ResourceStatus, status), ResourceVersion(
        _metadata_of(document), version, enum_member(VersionState, state),
        _sqlite_time(created), _sqlite_time(published)), published_version, _sqlite_time(retired),
        origin_node=origin)


def _version_from_row(row: Row) -> ResourceVersion:
    return ResourceVersion(
        metadata=_metadata_of(row.document),
        version=row.version,
        state=VersionState(row.state),
        created_at=row.created_at,
        published_at=row.published_at,
    )

class CatalogRepository:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    # -- reads -------------------------------------------------------------------------------
    def get(self, code: str, *, for_update: bool = False) -> Resource | None:
        query = select(resources).where(resources.c.code == code)
        if for_update and self.connection.dialect.name == "postgresql":
            query = query.with_for_update()
        head = self.connection.execute(query).first()
        if head is None:
            return None
        latest = self.get_version(code, head.latest_version)
        assert latest is not None, f"resource {code} has no row for its latest version"
        return Resource(
            code=head.code,
            status=ResourceStatus(head.status),
            latest=latest,
            published_version=head.published_version,
            retired_at=head.retired_at,
            origin_node=head.origin_node,
        )

    def get_version(self, code: str, version: int) -> ResourceVersion | None:
        row = self.connection.execute(
            select(resource_versions).where(
                resource_versions.c.code == code, resource_versions.c.version == version
            )
        ).first()
        return _version_from_row(row) if row else None

    def history(self, code: str) -> list[ResourceVersion]:
        rows = self.connection.execute(
            select(resource_versions).where(resource_versions.c.code == code).order_by(resource_versions.c.version)
        )
        return [_version_from_row(row) for row in rows]

    def existing_codes(self, codes: Iterable[str]) -> set[str]:
        wanted = sorted(set(codes))
        found: set[str] = set()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            found.update(
                self.connection.execute(select(resources.c.code).where(resources.c.code.in_(chunk))).scalars()
            )
        return found

    # -- PostgreSQL: the narrow search rows (catalog_search) ---------------------------------------
    @staticmethod
    def _narrow_where(flt: ResourceFilter, after_code: str, *, words: bool = True) -> tuple[list[str], list]:
        """The conditions on ``catalog_search`` rows for a filter (psycopg placeholders) and their values.
        ``words``: with the query words (their terms, for the GIN index, and ``LIKE`` for words of three
        characters or more, whose bigrams may occur apart; a shorter word is its one term exactly)."""
        where: list[str] = []
        params: list = []
        if flt.classification:
            # A code starts with its classification's digit (catalog/model.py checks it): the range lets
            # a walk in code order start and stop there.
            where.append("classification = %s AND code >= %s AND code < %s")
            params += [flt.classification.value, str(flt.classification.number),
                       str(flt.classification.number + 1)]
        for column, value in (("provider_code", flt.provider_code),
                              ("share_type", flt.share_type.value if flt.share_type else ""),
                              ("open_type", flt.open_type.value if flt.open_type else ""),
                              ("update_cycle", flt.update_cycle.value if flt.update_cycle else ""),
                              ("status", flt.status.value if flt.status else "")):
            if value:
                where.append(f"{column} = %s")
                params.append(value)
        if flt.code_prefix:
            where.append("code LIKE %s ESCAPE '\\'")
            params.append(_escape_like(flt.code_prefix) + "%")
        if flt.visible_to is None:
            where.append("latest")
        elif flt.status is ResourceStatus.DRAFT:
            # A draft is never public: only its own department's rows remain, read by (provider, code).
            where.append("latest AND provider_code = %s")
            params.append(flt.visible_to)
        else:
            # Other departments see the published version (or the latest when none is), never a draft.
            where.append("(latest AND provider_code = %s OR public AND provider_code <> %s)")
            params += [flt.visible_to, flt.visible_to]
        if after_code:
            where.append("code > %s")
            params.append(after_code)
        query_words = flt.query.lower().split()
        if words and query_words:
            where.append("terms @> %s::text[]")
            params.append(sorted({term for word in query_words for term in word_terms(word)}))
        for word in query_words if words else ():
            if len(word) > 2:
                where.append("search_text LIKE %s ESCAPE '\\'")
                params.append("%" + _escape_like(word) + "%")
        return where, params

    def _no_sequential_scan(self) -> None:
        """For the rest of the transaction, no sequential scan of ``catalog_search`` for a word. Why: for a
        common word the planner reckons reading the table in order until LIMIT rows match cheaper than
        the GIN index, not knowing that the condition then reads every row's out-of-line terms (524 ms
        against 13 ms for 10,001 matches of 信息 at 10^5)."""
        self.connection.exec_driver_sql("SELECT set_config('enable_seqscan', 'off', true)")

    def _narrow_count(self, where: list[str], params: list, at_most: int) -> int:
        known = self._known_count(where, params, at_most)
        if known is not None:
            return known
        generation = self._search_generation()
        counted = self.connection.exec_driver_sql(
            f"SELECT count(*) FROM (SELECT 1 FROM catalog_search WHERE {' AND '.join(where)} LIMIT %s) AS m",
            (*params, at_most)).scalar_one()
        self._remember_count(generation, where, params, at_most, counted)
        return counted

    def _search_generation(self) -> int | None:
        """PostgreSQL: the ``catalog_search`` generation this transaction sees, or None when a count read now
        may not be remembered (the transaction has written: its rows may yet roll back; no counter row)."""
        row = self.connection.exec_driver_sql(
            "SELECT generation, pg_current_xact_id_if_assigned() IS NULL FROM cache_generations WHERE name = %s",
            (generations.CATALOG_SEARCH,)).first()
        return row[0] if row is not None and row[1] else None

    def _count_key(self, where: list[str], params: list, at_most: int) -> tuple:
        return (_database_name(self.connection.engine.url), " AND ".join(where),
                tuple(tuple(p) if isinstance(p, list) else p for p in params), at_most)

    def _known_count(self, where: list[str], params: list, at_most: int) -> int | None:
        """PostgreSQL: a count remembered at the generation this transaction sees, else None. Why: counting
        10,001 matches reads their 10,001 rows behind the GIN bitmap (13–30 ms at 10^5: no index-only scan
        for a GIN index), several times a page of them, and the first pages people open are those of the
        same common searches (SQLite's ``_cached_fts_count`` likewise). Every change of ``catalog_search``
        moves the generation on in its own transaction, so a count is reused only for the rows it counted."""
        generation = self._search_generation()
        if generation is None:
            return None
        with _COUNTS_LOCK:
            known = _PG_COUNTS.get(self._count_key(where, params, at_most))
        return known[1] if known is not None and known[0] == generation else None

    def _remember_count(self, generation: int | None, where: list[str], params: list, at_most: int,
                        counted: int) -> None:
        """Keep a count read at ``generation`` (read before counting) if the generation is still that one:
        a count whose statement may have seen a later commit is not kept."""
        if generation is None or self._search_generation() != generation:
            return
        key = self._count_key(where, params, at_most)
        with _COUNTS_LOCK:
            _PG_COUNTS.pop(key, None)
            _PG_COUNTS[key] = (generation, counted)
            while len(_PG_COUNTS) > COUNT_CACHE:
                del _PG_COUNTS[next(iter(_PG_COUNTS))]

    def _narrow_page(self, flt: ResourceFilter, after_code: str, limit: int) -> tuple[list, int | None]:
        """PostgreSQL: (code, version) of a page, and on a first page of a word search the count up to
        FIRST_PAGE_COUNT. Why this way: a listing by attributes walks the narrow rows in code order (the
        primary key, or (provider, code)) and stops at the page's end. A word search's first page reads
        its matches from the GIN index once, at most FIRST_PAGE_COUNT of them: when they are fewer, that
        one pass gives both the count and the page (a top-N sort). Otherwise, and on later pages, a walk
        in code order filtered by ``LIKE`` (a common word fills a page within a few hundred rows), falling
        back to the GIN index with every match sorted when a window of WALK_WINDOW rows does not fill it.
        A count remembered for this generation of the rows (_known_count) spares the first pass; with
        fewer than WALK_MATCHES the page goes straight to the GIN index."""
        sql = self.connection.exec_driver_sql
        where, params = self._narrow_where(flt, after_code)
        if not flt.query.split():
            rows = sql(f"SELECT code, version FROM catalog_search WHERE {' AND '.join(where)} "
                       "ORDER BY code, version LIMIT %s", (*params, limit)).all()
            return rows, None
        self._no_sequential_scan()
        total = self._known_count(where, params, FIRST_PAGE_COUNT) if not after_code else None
        if not after_code and total is None:
            generation = self._search_generation()
            rows = sql("SELECT code, version, n FROM (SELECT code, version, count(*) OVER () AS n FROM ("
                       f"SELECT code, version FROM catalog_search WHERE {' AND '.join(where)} LIMIT %s) AS m) AS c "
                       "ORDER BY code, version LIMIT %s", (*params, FIRST_PAGE_COUNT, limit)).all()
            total = rows[0][2] if rows else 0
            self._remember_count(generation, where, params, FIRST_PAGE_COUNT, total)
            if total < FIRST_PAGE_COUNT:
                return [(code, version) for code, version, _ in rows], total
        # A remembered count of few matches goes straight to the GIN index: a walk would pass thousands
        # of rows (~1.7 us each for the LIKE) to find a page of them.
        for window in (WALK_WINDOW // 8, WALK_WINDOW) if total is None or total >= WALK_MATCHES else ():
            walked = self._narrow_walk(flt, after_code, limit, window)
            if walked is not None:
                return walked, total
        # Ordered by an expression, not by the primary key: the planner, expecting matches spread evenly,
        # would walk the key and filter, but codes cluster by classification (a walk past 90,000 rows of
        # a provider's neighbours); the GIN index finds the matches and a top-N sort of their codes is
        # cheap next to that.
        rows = sql(f"SELECT code, version FROM catalog_search WHERE {' AND '.join(where)} "
                   "ORDER BY code || '' LIMIT %s", (*params, limit)).all()
        return rows, total

    def _narrow_walk(self, flt: ResourceFilter, after_code: str, limit: int, window: int) -> list | None:
        """The next ``window`` shown rows in code order, filtered by ``LIKE``: the page when it fills (or
        the window reaches the catalog's end), else None."""
        where, params = self._narrow_where(flt, after_code, words=False)
        likes = ["search_text LIKE %s ESCAPE '\\'"] * len(flt.query.split())
        rows = self.connection.exec_driver_sql(
            "SELECT code, version, n FROM (SELECT code, version, search_text, count(*) OVER () AS n FROM ("
            f"SELECT code, version, search_text FROM catalog_search WHERE {' AND '.join(where)} "
            "ORDER BY code, version LIMIT %s) AS w) AS x "
            f"WHERE {' AND '.join(likes)} ORDER BY code, version LIMIT %s",
            (*params, window, *["%" + _escape_like(word) + "%" for word in flt.query.lower().split()],
             limit)).all()
        if len(rows) == limit or (rows and rows[0][2] < window):
            return [(code, version) for code, version, _ in rows]
        return None

    @staticmethod
    def _attributes(flt: ResourceFilter) -> dict[str, str]:
        return {"c": flt.classification.value if flt.classification else "",
                "h": flt.share_type.value if flt.share_type else "",
                "o": flt.open_type.value if flt.open_type else "",
                "u": flt.update_cycle.value if flt.update_cycle else "",
                "p": flt.provider_code, "s": flt.status.value if flt.status else ""}

    @classmethod
    def _fts_match(cls, flt: ResourceFilter) -> str | None:
        return fts_match(flt.query.lower().split(), cls._attributes(flt), flt.code_prefix, flt.visible_to)

    def _fts_count(self, expression: str, at_most: int) -> int:
        return raw.fetch_all(self.connection, "SELECT count(*) FROM (SELECT rowid FROM resource_search "
                             "WHERE resource_search MATCH ? LIMIT ?)", (expression, at_most))[0][0]

    def _index_generation(self) -> int:
        return raw.fetch_all(self.connection, "SELECT generation FROM resource_search_generation", ())[0][0]

    def _cached_fts_count(self, expression: str, at_most: int) -> int:
        """A count remembered per index generation. Why: counting 10,000 matches in FTS5 is 1–9 ms (a
        phrase of five bigrams the most), 2–20 times a page of them, and the first pages people open are
        those of the same common searches; every write of the index moves the generation on in its own
        transaction, so a count is reused only for exactly the index it was counted on. The generation is
        read again after counting: a count that may have seen a later index is not kept."""
        database = _database_name(self.connection.engine.url)
        generation = self._index_generation()
        key = (database, expression, at_most)
        with _COUNTS_LOCK:
            known = _COUNTS.get(key)
        if known is not None and known[0] == generation:
            return known[1]
        counted = self._fts_count(expression, at_most)
        # Not kept when this transaction wrote: it sees its own index rows, which may yet roll back and
        # another writer's commit then reach the same generation with other rows.
        if self._index_generation() == generation and not sqlite_transaction_wrote(self.connection):
            with _COUNTS_LOCK:
                _COUNTS.pop(key, None)
                _COUNTS[key] = (generation, counted)
                while len(_COUNTS) > COUNT_CACHE:
                    del _COUNTS[next(iter(_COUNTS))]
        return counted

    def list(self, flt: ResourceFilter, *, after_code: str, limit: int) -> list[Resource]:
        return self.search(flt, after_code=after_code, limit=limit)[0]

    def search(self, flt: ResourceFilter, *, after_code: str, limit: int) -> tuple[list[Resource], int | None]:
        """A page in code order. On SQLite a search (words or attribute filters) reads the matching
        versions' codes from the index and keeps the first ``limit`` (the cost grows with the number of
        matches: codes cluster by classification, so walking in code order can pass thousands of rows
        before a match). On PostgreSQL the page's (code, version) pairs, and a first page's count, come from
        the narrow ``catalog_search`` rows (_narrow_page)."""
        if self.connection.dialect.name == "sqlite":
            expression = self._fts_match(flt)
            if expression is None:
                return [], 0
            # Search ids follow (code, version) order, so the page is the first ``limit`` matching FTS5
            # rows above the last code shown: the index stops there, however many rows match.
            ids = self._fts_page(expression, self._search_bound(after_code), limit)
            if not ids:
                return [], 0
            found = self._sqlite_resources(ids)
            return [found[i] for i in ids if i in found], None
        pairs, total = self._narrow_page(flt, after_code, limit)
        if not pairs:
            return [], 0
        return self._postgresql_resources(pairs), total

    def _postgresql_resources(self, pairs: Sequence[tuple[str, int]]) -> list[Resource]:
        """The resources of these (code, version) pairs, in code order. Through the driver, by two arrays:
        SQLAlchemy's building of a 102-parameter IN and its result processing cost more than the query
        (8-26 ms under load, the query ~1 ms)."""
        rows = self.connection.exec_driver_sql(
            "SELECT r.code, r.status, r.published_version, r.retired_at, r.origin_node, v.version, v.state, "
            "v.document, v.created_at, v.published_at FROM unnest(%s::text[], %s::int[]) AS p(code, version) "
            "JOIN resource_versions v ON v.code = p.code AND v.version = p.version "
            "JOIN resources r ON r.code = v.code ORDER BY r.code",
            ([code for code, _ in pairs], [version for _, version in pairs])).all()
        return [Resource(code, enum_member(ResourceStatus, status), ResourceVersion(
            _metadata_of(document), version, enum_member(VersionState, state), _utc(created), _utc(published)),
            published_version, _utc(retired), origin_node=origin)
            for code, status, published_version, retired, origin, version, state, document, created, published
            in rows]

    def _search_bound(self, after_code: str) -> int:
        """SQLite: the search id above which the versions of codes after ``after_code`` lie."""
        if not after_code:
            return 0
        rows = raw.fetch_all(self.connection, "SELECT search_id FROM resource_versions WHERE code <= ? "
                             "ORDER BY code DESC, version DESC LIMIT 1", (after_code,))
        return (rows[0][0] if rows else 0) or 0

    def _fts_page(self, expression: str, bound: int, limit: int) -> list[int]:
        return [rowid for rowid, in raw.fetch_all(
            self.connection, "SELECT rowid FROM resource_search WHERE resource_search MATCH ? AND rowid > ? "
            "ORDER BY rowid LIMIT ?", (expression, bound, limit))]

    def _sqlite_resources(self, ids: Sequence[int]) -> dict[int, Resource]:
        """The resources shown by these search ids, by search id. By search id (SQLite plans ``(code,
        version) IN (…)`` under a join as a scan: 60 ms at 10^5), through the driver: SQLAlchemy's
        statement building and result processing cost more than the query itself here."""
        cursor = self.connection.connection.driver_connection.execute(
            "SELECT v.search_id, r.code, r.status, r.published_version, r.retired_at, r.origin_node, v.version, "
            "v.state, v.document, v.created_at, v.published_at FROM resource_versions v JOIN resources r "
            f"ON r.code = v.code WHERE v.search_id IN ({', '.join('?' * len(ids))})", tuple(ids))
        return {row[0]: _sqlite_resource(row[1:]) for row in cursor.fetchall()}

    def search_by_relevance(self, flt: ResourceFilter, *, after: tuple[int, str],
                            limit: int) -> tuple[list[tuple[int, Resource]], int | None]:
        """A page in relevance order: (rank, code), rank 0 when every query word is in the name, 1 when each
        is in the name or the summary, 2 otherwise (search_index.relevance_rank); ``after`` is the (rank,
        code) of the previous page's last resource. Without query words every rank is 0: code order.
        Returns (rank, resource) pairs and, when known on the way, the total."""
        words = flt.query.lower().split()
        after_rank, after_code = after
        if not words:
            if after_rank:
                return [], 0
            rows, total = self.search(flt, after_code=after_code, limit=limit)
            return [(0, row) for row in rows], total
        if self.connection.dialect.name != "sqlite":
            return self._postgresql_relevance_page(flt, words, after, limit)
        expression = self._fts_match(flt)
        if expression is None:
            return [], 0
        # Each rank is an FTS5 query in rowid (code) order: the page is the first rows past the bound in
        # the previous page's rank, then the first rows of the next ranks, never every match sorted.
        ranked: list[tuple[int, int]] = []
        for rank in range(after_rank, RELEVANCE_RANKS):
            bound = self._search_bound(after_code) if rank == after_rank else 0
            ids = self._fts_page(fts_rank_match(expression, words, rank), bound, limit - len(ranked))
            ranked.extend((rank, search_id) for search_id in ids)
            if len(ranked) == limit:
                break
        if not ranked:
            return [], 0
        found = self._sqlite_resources([search_id for _rank, search_id in ranked])
        return [(rank, found[search_id]) for rank, search_id in ranked if search_id in found], None

    def _postgresql_relevance_page(self, flt: ResourceFilter, words: list[str], after: tuple[int, str],
                                   limit: int) -> tuple[list[tuple[int, Resource]], int | None]:
        """PostgreSQL, relevance order, from the narrow rows alone (migration 0040: where the name and the
        summary end in ``search_text``, and their terms under GIN indexes of their own).

        Why this way: ranking every match by its ``resource_versions`` row and document cost ~1,800 ms at
        10^5, and ranking every match on the narrow rows still reads them all (10–150 ms). Each rank from
        the previous page's is a page in code order of its own (_narrow_rank_page), the ranks merged
        until the page is full: no sort of every match. A first page's count is the code order's (the
        same matches, remembered per generation)."""
        after_rank, after_code = after
        self._no_sequential_scan()
        total = None
        if not after_rank and not after_code:
            where, params = self._narrow_where(flt, "")
            total = self._narrow_count(where, params, FIRST_PAGE_COUNT)
            if not total:
                return [], 0
        ranked: list[tuple[int, str, int]] = []
        for rank in range(after_rank, RELEVANCE_RANKS):
            pairs = self._narrow_rank_page(flt, words, rank, after_code if rank == after_rank else "",
                                           limit - len(ranked), total)
            ranked.extend((rank, code, version) for code, version in pairs)
            if len(ranked) == limit:
                break
        if not ranked:
            return [], 0 if total is None else total
        return self._ranked_resources(ranked), total

    def _narrow_rank_page(self, flt: ResourceFilter, words: list[str], rank: int, after_code: str,
                          limit: int, matches: int | None) -> list[tuple[str, int]]:
        """(code, version) of the next ``limit`` matches of one relevance rank in code order. Rank 2 (items
        and keywords: most matches of a common word) first walks the shown rows in code order when the
        word's ``matches`` (if known) are dense enough to fill a page within WALK_WINDOW rows; otherwise,
        and for ranks 0 and 1, the rank's own GIN index (the name's terms, the name's and summary's, all)
        finds its candidates and a top-N sort orders them."""
        condition, condition_params = _rank_condition(words, rank)
        # Ranks 0 and 1 find every word in the name or summary (strpos), which implies the LIKE of rank 2.
        likes = ["search_text LIKE %s ESCAPE '\\'"] * len(words) if rank == RELEVANCE_RANKS - 1 else ["true"]
        like_params = ["%" + _escape_like(word) + "%" for word in words] if rank == RELEVANCE_RANKS - 1 else []
        sql = self.connection.exec_driver_sql
        where, params = self._narrow_where(flt, after_code, words=False)
        if rank == RELEVANCE_RANKS - 1 and (matches is None or matches >= WALK_MATCHES):
            for window in (WALK_WINDOW // 8, WALK_WINDOW):
                rows = sql(
                    "SELECT code, version, n FROM (SELECT code, version, search_text, name_length, "
                    "summary_length, count(*) OVER () AS n FROM (SELECT code, version, search_text, name_length, "
                    f"summary_length FROM catalog_search WHERE {' AND '.join(where)} ORDER BY code, version "
                    f"LIMIT %s) AS w) AS x WHERE {' AND '.join(likes)} AND {condition} ORDER BY code, version "
                    "LIMIT %s", (*params, window, *like_params, *condition_params, limit)).all()
                if len(rows) == limit or (rows and rows[0][2] < window):
                    return [(code, version) for code, version, _ in rows]
        column = ("name_terms", "lead_terms", "terms")[rank]
        terms = sorted({term for word in words for term in word_terms(word)})
        return [tuple(row) for row in sql(
            f"SELECT code, version FROM catalog_search WHERE {' AND '.join(where)} AND {column} @> %s::text[] "
            f"AND {' AND '.join(likes)} AND {condition} ORDER BY code || '' LIMIT %s",
            (*params, terms, *like_params, *condition_params, limit)).all()]

    def _ranked_resources(self, ranked: Sequence[tuple[int, str, int]]) -> list[tuple[int, Resource]]:
        found = {r.code: r for r in self._postgresql_resources([(code, version) for _, code, version in ranked])}
        return [(rank, found[code]) for rank, code, _ in ranked if code in found]

    def all(self, flt: ResourceFilter, *, page: int = 1000) -> list[Resource]:
        """Every resource the filter matches, read in pages of ``page`` (exports, scopes, the lists)."""
        out: list[Resource] = []
        after = ""
        while True:
            batch = self.list(flt, after_code=after, limit=page)
            out.extend(batch)
            if len(batch) < page:
                return out
            after = batch[-1].code

    def count(self, flt: ResourceFilter, *, at_most: int) -> int:
        """How many resources the filter matches, counting no further than ``at_most`` (so a count
        never reads the whole catalog; callers show "at_most+" when the answer is ``at_most``)."""
        if self.connection.dialect.name == "sqlite":
            # Filters and visibility are words of the FTS5 rows: the index counts alone, in C.
            expression = self._fts_match(flt)
            return 0 if expression is None else self._cached_fts_count(expression, at_most)
        where, params = self._narrow_where(flt, "")
        if flt.query.split():
            self._no_sequential_scan()
        return self._narrow_count(where, params, at_most)

    def count_by_status(self) -> dict[str, int]:
        rows = self.connection.execute(select(resources.c.status, func.count()).group_by(resources.c.status))
        return {status: n for status, n in rows}

    def events_since(self, sequence: int, limit: int) -> Sequence[Row]:
        return self.connection.execute(
            select(catalog_events).where(catalog_events.c.sequence > sequence)
            .order_by(catalog_events.c.sequence).limit(limit)
        ).all()

    def last_event_of(self, code: str, visible_to: str | None) -> Row | None:
        """The newest event of one resource the caller may see (its position in the feed)."""
        e = catalog_events
        conditions = [e.c.code == code]
        if visible_to is not None:
            conditions.append(or_(e.c.kind.in_(PUBLIC_EVENT_KINDS), e.c.provider_code == visible_to))
        return self.connection.execute(select(e).where(*conditions).order_by(e.c.sequence.desc()).limit(1)).first()

    def last_event_position(self) -> int:
        return self.connection.execute(select(func.max(catalog_events.c.sequence))).scalar_one() or 0

    def feed_events(self, after: int, up_to: int, flt: EventFilter, limit: int) -> Sequence[Row]:
        """Events after ``after`` and at most ``up_to``, that pass the filter, in position order."""
        e = catalog_events
        conditions = [e.c.sequence > after, e.c.sequence <= up_to]
        if flt.visible_to is not None:
            conditions.append(or_(e.c.kind.in_(PUBLIC_EVENT_KINDS), e.c.provider_code == flt.visible_to))
        if flt.public_only:
            conditions.append(e.c.kind.in_(PUBLIC_EVENT_KINDS))
        if flt.provider_code:
            conditions.append(e.c.provider_code == flt.provider_code)
        if flt.classification:
            conditions.append(e.c.classification == flt.classification.value)
        if flt.code_prefix:
            conditions.append(e.c.code.like(_escape_like(flt.code_prefix) + "%", escape="\\"))
        return self.connection.execute(select(e).where(*conditions).order_by(e.c.sequence).limit(limit)).all()

    def feed_cursor(self, name: str) -> int:
        found = self.connection.execute(
            select(catalog_feed_cursors.c.position).where(catalog_feed_cursors.c.name == name)).scalar()
        return found or 0

    def advance_feed_cursor(self, name: str, position: int, now: dt.datetime) -> None:
        """Move a cursor forward (never back: a slower replica's late write cannot undo a faster one's)."""
        c = catalog_feed_cursors
        changed = self.connection.execute(
            update(c).where(c.c.name == name, c.c.position < position).values(position=position, updated_at=now))
        if changed.rowcount == 0 and self.connection.execute(select(c.c.name).where(c.c.name == name)).first() is None:
            self.connection.execute(insert(c).values(name=name, position=position, updated_at=now))

    # -- writes ------------------------------------------------------------------------------
    def add(self, resource: Resource, now: dt.datetime) -> None:
        self.add_many([resource], now)

    def add_many(self, new: Sequence[Resource], now: dt.datetime) -> None:
        """Insert resources in one executemany per table (imports of thousands stay one transaction)."""
        if not new:
            return
        # In code order: each B-tree (the primary keys, the search ids that follow code order) then takes
        # its rows at one growing edge instead of all over the tree, as a file in its own order would.
        new = sorted(new, key=lambda r: r.code)
        if len(new) >= FTS_BULK and self.connection.dialect.name == "sqlite":
            self._fts_pending_memory()
        self._bulk_insert(resources, [
            {"code": r.code, "status": r.status._value_, "provider_code": r.provider_code,
             "latest_version": r.latest.version, "published_version": r.published_version,
             "created_at": now, "updated_at": now, "retired_at": r.retired_at}
            for r in new
        ])
        self._insert_versions([(r.code, r.latest) for r in new], heads=new)
        if len(new) >= FTS_BULK and self.connection.dialect.name == "postgresql":
            self._merge_gin_pending()

    def _merge_gin_pending(self) -> None:
        """PostgreSQL: move the GIN indexes' pending entries into their trees at the end of an import. Why:
        GIN's fast update queues new rows' terms in a pending list (up to gin_pending_list_limit, 4 MB: some
        300-500 pages per index after an import) that every search then reads in full, until autovacuum
        gets to it (measured at 3*10^4: relevance pages 10-100 ms with the lists, 4-15 ms without). The
        work is the merge VACUUM would do later, done once per file, like SQLite's one FTS5 segment."""
        self.connection.exec_driver_sql(
            "SELECT gin_clean_pending_list(%s::regclass), gin_clean_pending_list(%s::regclass), "
            "gin_clean_pending_list(%s::regclass)",
            ("ix_catalog_search_terms", "ix_catalog_search_name_terms", "ix_catalog_search_lead_terms"))

    def _fts_pending_memory(self) -> None:
        """SQLite: let FTS5 hold FTS_PENDING_BYTES of new terms in memory before it writes a segment (its
        default, 1 MB, is some 1,200 resources: an import of 5,000 wrote four segments and merged them,
        a quarter of the index's CPU time; now one per file). A setting of the table, written once."""
        sql = self.connection.exec_driver_sql
        if sql("SELECT v FROM resource_search_config WHERE k = 'hashsize'").scalar() != FTS_PENDING_BYTES:
            sql("INSERT INTO resource_search (resource_search, rank) VALUES ('hashsize', ?)", (FTS_PENDING_BYTES,))

    def save(self, resource: Resource, previous: Resource, now: dt.datetime) -> None:
        """Persist a lifecycle step; a published version row is never written again."""
        before = self._indexed_documents(resource.code)
        self.connection.execute(
            update(resources).where(resources.c.code == resource.code).values(
                status=resource.status.value, latest_version=resource.latest.version,
                published_version=resource.published_version, updated_at=now, retired_at=resource.retired_at,
            )
        )
        latest = resource.latest
        if latest.version == previous.latest.version:
            if previous.latest.state is VersionState.PUBLISHED and latest != previous.latest:
                raise AssertionError(f"attempt to rewrite published version {latest.version} of {resource.code}")
            if latest != previous.latest:
                self._rewrite_draft(resource.code, latest)
        else:
            self._insert_versions([(resource.code, latest)], indexed=before)
        self._reindex(resource.code, before)

    def route(self, code: str) -> tuple[str, str]:
        """(origin node, next hop) of a resource ("" for this node's own): where a request about it goes."""
        row = self.connection.execute(select(resources.c.origin_node, resources.c.via_node).where(
            resources.c.code == code)).first()
        if row is None or not row.origin_node:
            return "", ""
        return row.origin_node, row.via_node or row.origin_node

    def put_foreign(self, resource: Resource, origin_node: str, now: dt.datetime, via_node: str = "") -> bool:
        """Store a lower tier's published or retired version as a read-only entry; False when this
        version in this status is already here (a repeat changes nothing). ``via_node``: the lower node it
        came through, when that is not ``origin_node`` (requests go there)."""
        head = self.connection.execute(select(resources).where(resources.c.code == resource.code)).first()
        before = self._indexed_documents(resource.code)
        values = {"status": resource.status.value, "provider_code": resource.provider_code,
                  "latest_version": resource.latest.version, "published_version": resource.published_version,
                  "updated_at": now, "retired_at": resource.retired_at, "origin_node": origin_node,
                  "via_node": via_node if via_node != origin_node else ""}
        if head is None:
            self.connection.execute(insert(resources).values(code=resource.code, created_at=now, **values))
        elif head.latest_version > resource.latest.version or (
                head.latest_version == resource.latest.version and head.status == resource.status.value):
            return False  # older news, or a repeat
        else:
            self.connection.execute(update(resources).where(resources.c.code == resource.code).values(**values))
        if self.get_version(resource.code, resource.latest.version) is None:
            self._insert_versions([(resource.code, resource.latest)], indexed=before)
        self._reindex(resource.code, before)
        return True

    def append_events(self, events: Sequence[tuple[str, Resource]], now: dt.datetime) -> None:
        """Append catalog events; call it as the last statement of the change's transaction.

        Why a lock: the feed (WatchCatalog, the fanout publisher) reads "events after position P" and
        must never skip one. PostgreSQL hands out sequence values when rows are inserted, not when they
        commit, so without care transaction A could take position 7, transaction B position 8, B commit
        first, a watcher read 8 and move its cursor past 7, and A's event (committed a moment later)
        would never be sent. Taking a transaction-scoped advisory lock before the insert serialises the
        event-writing tail of catalog transactions: positions are drawn under the lock and the lock is
        released only after the commit has become visible, so an event is visible before any event with
        a larger position, and "the largest visible position" is a safe starting point. The alternative,
        serving only positions below the smallest in-flight transaction's, needs xid bookkeeping per row
        and delays every watcher behind the slowest writer. The price of the lock: concurrent catalog
        commits no longer share fsyncs (measured with 4 writers on PostgreSQL here: ~360 single-resource
        changes/s with it, 560-715 without); catalog changes are administrative (hundreds on a busy day)
        and an import writes all its events in one statement, so that is ample. It is taken last, after
        every row lock the use case holds, so it adds no lock-order cycle. SQLite needs nothing: its
        writers are already serialised (BEGIN IMMEDIATE), so rowid order is commit order.
        """
        if not events:
            return
        if self.connection.dialect.name == "postgresql":
            self.connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": EVENT_LOG_LOCK})
        rows = []
        for kind, r in events:
            shown = r.latest
            if kind in PUBLIC_EVENT_KINDS and r.published_version and r.published_version != shown.version:
                # Retiring a resource with a pending draft: everybody sees this event, so it names the
                # published version, never the draft's number or metadata.
                published = self.get_version(r.code, r.published_version)
                assert published is not None, f"resource {r.code} has no row for published version"
                shown = published
            rows.append({"kind": kind, "code": r.code, "version": shown.version, "provider_code": r.provider_code,
                         "at": now, "name": shown.metadata.name,
                         "classification": shown.metadata.classification._value_})
        self._bulk_insert(catalog_events, rows)

    def _insert_versions(self, versions: Sequence[tuple[str, ResourceVersion]],
                         heads: Sequence[Resource] | None = None, indexed: dict | None = None) -> list[dict]:
        """Insert version rows. With ``heads`` (new resources) their index entries are written at once;
        otherwise the caller's ``_reindex`` writes them, from ``indexed``: the changed resource's FTS5
        documents as the index holds them, by search id (kept true when a respacing moves them)."""
        values = [self._version_values(code, version) for code, version in versions]
        if self.connection.dialect.name == "sqlite":
            self._assign_search_ids(values, indexed)
        self._bulk_insert(resource_versions, values)
        if heads is not None:
            self._index_new_versions(values, heads)
        return values

    def _index_new_versions(self, values: list[dict], heads: Sequence[Resource]) -> None:
        """The index entries of new resources' version rows (``values``), built in bulk: on PostgreSQL
        their ``catalog_search`` rows (one COPY), on SQLite their FTS5 rows (one executemany)."""
        entries = [indexed_version(row, head.status._value_, latest_version=head.latest.version,
                                   published_version=head.published_version, summary=head.latest.metadata.summary)
                   for row, head in zip(values, heads, strict=True)]
        if self.connection.dialect.name == "sqlite":
            self._index_insert({row["search_id"]: fts_columns(entry) for row, entry in zip(values, entries, strict=True)})
        else:
            self._bulk_insert(catalog_search, [
                _search_row(row["version"], entry) for row, entry in zip(values, entries, strict=True)])
            generations.bump(self.connection, generations.CATALOG_SEARCH)

    def _bulk_insert(self, table: Table, rows: Sequence[dict]) -> None:
        """One driver executemany of rows with the same keys. Why not ``connection.execute(insert(t),
        rows)``: SQLAlchemy compiles and processes every parameter of every row in Python, most of an
        import's time; here only the columns whose type converts values (timestamps) are processed."""
        if not rows:
            return
        dialect = self.connection.dialect
        columns = list(rows[0])
        copy = dialect.name == "postgresql" and len(rows) > 1
        # COPY writes a text[] column's list as an array literal itself: SQLAlchemy's ARRAY processor (a
        # copy of every list, element by element in Python) would change nothing of a list of text.
        processors = [None if copy and isinstance(table.c[name].type, ARRAY) and isinstance(rows[0][name], list)
                      else table.c[name].type._cached_bind_processor(dialect) for name in columns]
        marker = "?" if dialect.paramstyle == "qmark" else "%s"
        statement = (f"INSERT INTO {table.name} ({', '.join(columns)}) "
                     f"VALUES ({', '.join([marker] * len(columns))})")
        converted = [i for i, processor in enumerate(processors) if processor is not None]
        if converted:
            done: dict = {}  # an import's rows share their timestamps: each is converted once
            params = []
            for row in rows:
                values = [row[name] for name in columns]
                for i in converted:
                    value = values[i]
                    if not isinstance(value, dt.datetime):
                        values[i] = processors[i](value)
                        continue
                    if (i, value) not in done:
                        done[i, value] = processors[i](value)
                    values[i] = done[i, value]
                params.append(tuple(values))
        else:
            params = [tuple(row[name] for name in columns) for row in rows]
        if copy:
            self._copy(table, columns, params)
            return
        self.connection.exec_driver_sql(statement, params)

    def _copy(self, table: Table, columns: list[str], params: list[tuple]) -> None:
        """PostgreSQL: rows through COPY, in the transaction of the connection. Why: an executemany is one
        statement per row on the server (parse, plan, bind each time); COPY streams them into one, half the
        server's time for an import's versions (measured: 5,000 versions 8 s against 16 s on a loaded
        machine), and psycopg writes the rows in C. Defaults (a sequence) are drawn in row order."""
        arrays = [i for i, value in enumerate(params[0]) if isinstance(value, list)]
        if arrays:
            params = [tuple(_array_literal(v) if i in arrays else v for i, v in enumerate(row)) for row in params]
        cursor = self.connection.connection.driver_connection.cursor()
        with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in params:
                copy.write_row(row)


    def _assign_search_ids(self, values: list[dict], indexed: dict | None = None) -> None:
        """SQLite: give the new version rows search ids in (code, version) order among the stored ones
        (writers hold SQLite's write lock, BEGIN IMMEDIATE, so the neighbours cannot change meanwhile);
        where a gap is used up, the stored ids around it are spread out first (``_respace``)."""
        ordered = sorted(values, key=lambda row: (row["code"], row["version"]))
        sql = self.connection.exec_driver_sql
        plan: list[tuple[list[dict], list[int]]] = []
        start = 0
        while start < len(ordered):
            # New keys never equal stored ones (the primary key). The first stored key above this row
            # bounds a run of new rows with no stored one between them: two look-ups per run, however
            # large the catalog (runs are few in an import: one per front code the file adds to).
            key = (ordered[start]["code"], ordered[start]["version"])
            above = sql("SELECT code, version, search_id FROM resource_versions WHERE (code, version) > (?, ?) "
                        "ORDER BY code, version LIMIT 1", key).first()
            below = sql("SELECT search_id FROM resource_versions WHERE (code, version) < (?, ?) "
                        "ORDER BY code DESC, version DESC LIMIT 1", key).scalar()
            end = start + 1
            while end < len(ordered) and (above is None or (ordered[end]["code"], ordered[end]["version"])
                                          < (above.code, above.version)):
                end += 1
            ids = allocate_search_ids(below, None if above is None else above.search_id, end - start)
            if ids is None:
                # Each respacing leaves every gap of its window room for all of ``values``: this run
                # fits next time and no other run's gap got smaller than it needs, so this ends.
                self._respace(key, len(values), indexed)
                self._assign_search_ids(values, indexed)
                return
            plan.append((ordered[start:end], ids))
            start = end
        for run, ids in plan:
            for row, search_id in zip(run, ids, strict=True):
                row["search_id"] = search_id

    def _respace(self, key: tuple[str, int], reserve: int, indexed: dict | None) -> None:
        """Spread the search ids of the stored versions around ``key`` evenly again, over the smallest
        window (RESPACE_RADIUS rows each side, then four times that …) whose id range leaves each gap room
        for ``reserve`` new rows and more inserts later, keeping room for ``reserve`` rows at ``key``;
        only the window's version rows and FTS5 rows are rewritten.

        Why a window: a provider that keeps adding codes at one place (its new codes sort just below the
        next front code) uses that gap up every SEARCH_ID_SPACING / SEARCH_ID_STEP inserts. Renumbering
        the whole catalog then read every version into memory (6.4 GB at 10^6 resources) and rewrote
        every FTS5 row in one transaction, minutes with the write lock held; a window is tens of rows."""
        v, r = resource_versions, resources
        columns = (v.c.search_id, v.c.code, v.c.version, v.c.name, v.c.document, v.c.search_text,
                   v.c.classification, v.c.share_type, v.c.open_type, v.c.update_cycle, v.c.provider_code,
                   r.c.status, r.c.latest_version, r.c.published_version)
        rows = select(*columns).select_from(v.join(r, r.c.code == v.c.code))
        position = tuple_(v.c.code, v.c.version)
        least = max(2 * SEARCH_ID_STEP, reserve + 1)
        radius = RESPACE_RADIUS
        while True:
            lower = self.connection.execute(rows.where(position < key).order_by(
                v.c.code.desc(), v.c.version.desc()).limit(radius + 1)).all()
            upper = self.connection.execute(rows.where(position > key).order_by(
                v.c.code, v.c.version).limit(radius + 1)).all()
            floor = lower[radius].search_id if len(lower) > radius else 0
            ceiling = upper[radius].search_id if len(upper) > radius else None
            lower, upper = lower[:radius][::-1], upper[:radius]
            if ceiling is None:
                spacing = max(SEARCH_ID_SPACING, least)
                break
            spacing = (ceiling - floor) // (len(lower) + reserve + len(upper) + 1)
            if spacing >= least:
                break
            radius *= 4
        slots = [*range(1, len(lower) + 1), *range(len(lower) + reserve + 1, len(lower) + reserve + 1 + len(upper))]
        moves = [(row, floor + spacing * slot) for row, slot in zip([*lower, *upper], slots, strict=True)
                 if floor + spacing * slot != row.search_id]
        if not moves:
            return
        ours = indexed if indexed is not None else {}
        documents = {row.search_id: ours[row.search_id] if row.search_id in ours else fts_columns(indexed_version(
            row._mapping, row.status, latest_version=row.latest_version, published_version=row.published_version))
            for row, _new in moves}
        sql = self.connection.exec_driver_sql
        sql("INSERT INTO resource_search (resource_search, rowid, name, summary, rest, attributes) "
            "VALUES ('delete', ?, ?, ?, ?, ?)", [(row.search_id, *documents[row.search_id]) for row, _new in moves])
        sql("UPDATE resource_versions SET search_id = ? WHERE code = ? AND version = ?",
            [(new, row.code, row.version) for row, new in moves])
        self._index_insert({new: documents[row.search_id] for row, new in moves})
        if indexed is not None:
            moved = {row.search_id: new for row, new in moves}
            remapped = {moved.get(search_id, search_id): document for search_id, document in indexed.items()}
            indexed.clear()
            indexed.update(remapped)

    def _rewrite_draft(self, code: str, version: ResourceVersion) -> None:
        v = resource_versions
        where = (v.c.code == code, v.c.version == version.version, v.c.state == VersionState.DRAFT.value)
        self.connection.execute(update(v).where(*where).values(**self._version_values(code, version)))

    # -- the text index -------------------------------------------------------------------------
    def _indexed_documents(self, code: str) -> dict:
        """The index entries of a resource's versions as the database's rows make them now: on SQLite
        FTS5 documents by search_id, on PostgreSQL term arrays by version. Read from the stored rows, not
        from the caller's objects: a contentless FTS5 row is removed by giving back exactly its text."""
        sqlite = self.connection.dialect.name == "sqlite"
        v, r = resource_versions, resources
        rows = self.connection.execute(
            select(v.c.search_id, v.c.code, v.c.version, v.c.name, v.c.document, v.c.search_text,
                   v.c.classification, v.c.share_type,
                   v.c.open_type, v.c.update_cycle, v.c.provider_code, r.c.status, r.c.latest_version,
                   r.c.published_version)
            .select_from(v.join(r, r.c.code == v.c.code)).where(v.c.code == code)).all()
        out: dict = {}
        for row in rows:
            entry = indexed_version(row._mapping, row.status, latest_version=row.latest_version,
                                    published_version=row.published_version)
            if sqlite:
                out[row.search_id] = fts_columns(entry)
            else:
                out[row.version] = _search_row(row.version, entry)
        return out

    def _reindex(self, code: str, before: dict) -> None:
        """Bring the resource's index entries from ``before`` to what its rows say now (status and
        visibility are words of every version's entry, so a publication or retirement rewrites them)."""
        after = self._indexed_documents(code)
        if self.connection.dialect.name != "sqlite":
            s = catalog_search
            changed = [version for version, row in after.items() if before.get(version) != row]
            if changed:
                self.connection.execute(s.delete().where(s.c.code == code, s.c.version.in_(changed)))
                self._bulk_insert(catalog_search, [after[version] for version in changed])
                generations.bump(self.connection, generations.CATALOG_SEARCH)
            return
        stale = [(search_id, *document) for search_id, document in before.items() if after.get(search_id) != document]
        if stale:
            self.connection.exec_driver_sql(
                "INSERT INTO resource_search (resource_search, rowid, name, summary, rest, attributes) "
                "VALUES ('delete', ?, ?, ?, ?, ?)", stale)
            self._index_changed()
        self._index_insert({search_id: document for search_id, document in after.items()
                            if before.get(search_id) != document})

    def _index_insert(self, documents: dict[int, tuple[str, ...]]) -> None:
        """Insert FTS5 rows in rowid order. Why sorted: FTS5 flushes its pending terms to a new segment
        whenever a rowid is lower than the previous one of the transaction, so an import's rows in file
        order (search ids follow code order) cost one tiny segment and its merges each: 210 µs a row
        against 50 µs sorted (measured on 10^4 generated resources)."""
        if documents:
            self.connection.exec_driver_sql(
                "INSERT INTO resource_search (rowid, name, summary, rest, attributes) VALUES (?, ?, ?, ?, ?)",
                [(search_id, *columns) for search_id, columns in sorted(documents.items())])
            self._index_changed()

    def _index_changed(self) -> None:
        """SQLite: a new generation of the text index, in the writing transaction (the count cache's key)."""
        self.connection.exec_driver_sql("UPDATE resource_search_generation SET generation = generation + 1")

    @staticmethod
    def _version_values(code: str, version: ResourceVersion) -> dict:
        meta = version.metadata
        return {
            "code": code, "version": version.version, "state": version.state._value_, "name": meta.name,
            "classification": meta.classification._value_, "provider_code": meta.provider_code,
            "provider_name": meta.provider_name, "share_type": meta.share_type._value_,
            "open_type": meta.open_type._value_, "update_cycle": meta.update_cycle._value_,
            "search_text": meta.search_text(),
            "document": metadata_document(meta),
            "created_at": version.created_at, "published_at": version.published_at,
        }


@lru_cache(maxsize=64)
def _database_name(url: object) -> str:
    """The database a remembered count belongs to: its URL as text, rendered once per URL (rendering it
    was a tenth of a cached SQLite search's Python)."""
    return str(url)


_NAME_PART = "substr(search_text, 1, name_length)"
_SUMMARY_PART = "substr(search_text, name_length + 2, summary_length)"


def _in_name(words: list[str]) -> tuple[str, list[str]]:
    return " AND ".join([f"strpos({_NAME_PART}, %s) > 0"] * len(words)), list(words)


def _in_name_or_summary(words: list[str]) -> tuple[str, list[str]]:
    return (" AND ".join([f"(strpos({_NAME_PART}, %s) > 0 OR strpos({_SUMMARY_PART}, %s) > 0)"] * len(words)),
            [w for word in words for w in (word, word)])


def _rank_expression(words: list[str]) -> tuple[str, list[str]]:
    """PostgreSQL: a ``catalog_search`` row's relevance rank (search_index.relevance_rank) and its values."""
    name, name_params = _in_name(words)
    either, either_params = _in_name_or_summary(words)
    return f"CASE WHEN {name} THEN 0 WHEN {either} THEN 1 ELSE 2 END", [*name_params, *either_params]


def _rank_condition(words: list[str], rank: int) -> tuple[str, list[str]]:
    """PostgreSQL: the condition that a matching row has relevance rank ``rank``, and its values."""
    name, name_params = _in_name(words)
    either, either_params = _in_name_or_summary(words)
    if rank == 0:
        return f"({name})", name_params
    if rank == 1:
        return f"({either}) AND NOT ({name})", [*either_params, *name_params]
    return f"NOT ({either})", either_params


def _search_row(version: int, entry: IndexedVersion) -> dict:
    """A version's ``catalog_search`` row (PostgreSQL)."""
    name, summary, _rest = entry.fields()
    return {"code": entry.code, "version": version, "latest": entry.latest, "public": entry.public,
            "provider_code": entry.provider_code, "classification": entry.classification,
            "share_type": entry.share_type, "open_type": entry.open_type, "update_cycle": entry.update_cycle,
            "status": entry.status, "search_text": entry.search_text,
            "terms": [*sorted(text_terms(entry.search_text)), OUT_OF_LINE],
            "name_length": entry.name_length, "summary_length": entry.summary_length,
            "name_terms": sorted(text_terms(name)), "lead_terms": sorted(text_terms(name + "\n" + summary))}


def _array_literal(values: list[str] | None) -> str | None:
    """A ``text[]`` value as PostgreSQL's array literal, every element quoted. Why not psycopg's list
    dumper: it is Python per element (a regex each), half an import's client time for the search terms."""
    if values is None:
        return None
    if not values:
        return "{}"
    body = '","'.join(values)
    if '"' in body or "\\" in body:
        # Escaped all at once: joined by NUL (which no PostgreSQL text holds), then the separators put in.
        body = "\0".join(values).replace("\\", "\\\\").replace('"', '\\"').replace("\0", '","')
    return '{"' + body + '"}'
