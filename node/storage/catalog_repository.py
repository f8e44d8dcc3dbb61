"""Catalog persistence: resources, their versions and the catalog event log, in SQLAlchemy Core."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import (
    Table,
    Text,
    and_,
    case,
    cast,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Row
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Subquery

from catalog.interchange import enum_member, metadata_from_trusted_dict, metadata_to_dict
from catalog.model import (
    Classification,
    OpenType,
    Resource,
    ResourceStatus,
    ResourceVersion,
    ShareType,
    UpdateCycle,
    VersionState,
)
from node.storage.search_index import (
    SEARCH_ID_SPACING,
    allocate_search_ids,
    array_terms,
    fts_document,
    fts_match,
    indexed_version,
    word_terms,
)
from node.storage.tables import catalog_events, catalog_feed_cursors, resource_versions, resources


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

WALK_WINDOW = 2_048
"""PostgreSQL: how many shown versions a later page of a word search reads in code order (an eighth of
it first) before it leaves the page to the GIN index (a word in one version in 40 fills a page)."""


def _sqlite_time(value: str | None) -> dt.datetime | None:
    """A timestamp as SQLite keeps it (UTC, no zone: tables.UTCDateTime), read by the driver directly."""
    return None if value is None else dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)


def _version_from_row(row: Row) -> ResourceVersion:
    return ResourceVersion(
        metadata=metadata_from_trusted_dict(json.loads(row.document)),
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

    def _filtered(self, flt: ResourceFilter, *, walk: bool = False, words: bool = True) -> tuple:
        """The join of heads and shown versions, and the filter's conditions. ``walk``: SQLite is to walk
        the catalog in code order, so the filter columns are wrapped (``col || ''``) where an index on
        them would tempt its planner into reading every match and sorting them."""
        v, r = resource_versions, resources

        def plain(column: ColumnElement) -> ColumnElement:
            return column.concat("") if walk else column

        conditions = []
        if flt.classification:
            conditions.append(plain(v.c.classification) == flt.classification.value)
            # A code starts with its classification's digit (catalog/model.py checks it): the range
            # lets an index in code order serve the filter.
            digit = str(flt.classification.number)
            conditions.extend([r.c.code >= digit, r.c.code < str(flt.classification.number + 1)])
        if flt.provider_code:
            conditions.append(plain(r.c.provider_code) == flt.provider_code)
        if flt.share_type:
            conditions.append(plain(v.c.share_type) == flt.share_type.value)
        if flt.open_type:
            conditions.append(plain(v.c.open_type) == flt.open_type.value)
        if flt.update_cycle:
            conditions.append(plain(v.c.update_cycle) == flt.update_cycle.value)
        if flt.status:
            conditions.append(plain(r.c.status) == flt.status.value)
        if flt.code_prefix:
            conditions.append(r.c.code.like(_escape_like(flt.code_prefix) + "%", escape="\\"))
        if flt.visible_to is not None:
            conditions.append(or_(r.c.status != ResourceStatus.DRAFT.value, r.c.provider_code == flt.visible_to))
        if words:
            conditions.extend(v.c.search_text.like("%" + _escape_like(word) + "%", escape="\\")
                              for word in flt.query.lower().split())
        shown = v.c.version == r.c.latest_version
        if flt.visible_to is not None:
            # Other departments see the published version, not the owner's pending draft of it.
            own = r.c.provider_code == flt.visible_to
            if self.connection.dialect.name == "postgresql":
                # The same choice as column equalities: PostgreSQL estimates ``version = CASE … END`` at
                # 0.5 %, so at 10^5 resources it expected a few rows and hashed and sorted the whole
                # catalog for one page (~100 ms) instead of walking the primary keys (< 1 ms). SQLite
                # plans the CASE form well and the OR form badly, so it keeps the CASE.
                other = r.c.provider_code != flt.visible_to
                shown = or_(
                    and_(own, v.c.version == r.c.latest_version),
                    and_(other, v.c.version == r.c.published_version),
                    and_(other, r.c.published_version.is_(None), v.c.version == r.c.latest_version),
                )
            else:
                shown = v.c.version == case(
                    (own, r.c.latest_version), else_=func.coalesce(r.c.published_version, r.c.latest_version))
        join = r.join(v, and_(v.c.code == r.c.code, shown))
        return join, conditions

    @classmethod
    def _narrowed(cls, flt: ResourceFilter) -> bool:
        """PostgreSQL: a search by words, answered by the GIN index. Attribute filters alone walk the
        catalog in code order instead (through the (provider, code) and (status, code) indexes, the code
        range of a classification, or the primary key): the GIN index finds their matches but every one
        is then read and sorted (996 ms p99 at 10^5 for a share type matching 40 % of the catalog),
        while a walk stops at the page's end."""
        return bool(flt.query.split())

    def _array_matches(self, flt: ResourceFilter, after_code: str) -> Subquery:
        """PostgreSQL: (code, version) of every shown version holding every query word. The GIN index
        is asked for the words' terms only; visibility and attribute filters are the plain columns of
        the join (their words, zzvlatest and zzvpublic among them, have posting lists as long as the
        catalog: asking GIN for them cost 59 ms p50 for a rare word at 10^5), and ``LIKE`` confirms the
        words (a longer word's bigrams may occur apart)."""
        v = resource_versions
        terms = sorted({term for word in flt.query.lower().split() for term in word_terms(word)})
        join, conditions = self._filtered(flt)
        holds = v.c.search_terms.op("@>")(cast(literal(terms, ARRAY(Text)), ARRAY(Text)))
        return (select(v.c.code, v.c.version).select_from(join)
                .where(holds, *conditions, resources.c.code > after_code).subquery())

    def _walked_page(self, flt: ResourceFilter, after_code: str, limit: int, window_size: int) -> list | None:
        """PostgreSQL, a later page of a word search (its total travels in the page token): the next
        ``window_size`` shown versions in code order, filtered by ``LIKE``. The page when it fills up (or the
        window reaches the catalog's end); None when it does not (rare words: the GIN index then finds
        the few matches). A common word's page is then ~WALK_WINDOW rows read, not every match sorted."""
        v = resource_versions
        join, conditions = self._filtered(flt, words=False)
        walked = (select(resources.c.code, v.c.version, v.c.search_text).select_from(join)
                  .where(*conditions, resources.c.code > after_code, v.c.code > after_code)  # both sides of
                  .order_by(resources.c.code).limit(window_size).subquery())  # the merge join start there
        # Counted after the LIMIT (a window function beside it would count the whole join first).
        window = select(walked, func.count().over().label("n")).subquery()
        rows = self.connection.execute(
            select(window.c.code, window.c.version, window.c.n)
            .where(*[window.c.search_text.like("%" + _escape_like(word) + "%", escape="\\")
                     for word in flt.query.lower().split()])
            .order_by(window.c.code).limit(limit)).all()
        if len(rows) == limit or (rows and rows[0][2] < window_size):
            return [(code, version, None) for code, version, _ in rows]
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
        return self.connection.exec_driver_sql(
            "SELECT count(*) FROM (SELECT rowid FROM resource_search WHERE resource_search MATCH ? LIMIT ?)",
            (expression, at_most)).scalar_one()

    def list(self, flt: ResourceFilter, *, after_code: str, limit: int) -> list[Resource]:
        return self.search(flt, after_code=after_code, limit=limit)[0]

    def search(self, flt: ResourceFilter, *, after_code: str, limit: int) -> tuple[list[Resource], int | None]:
        """A page in code order. On SQLite a search (words or attribute filters) reads the matching
        versions' codes from the index and keeps the first ``limit`` (the cost grows with the number of
        matches: codes cluster by classification, so walking in code order can pass thousands of rows
        before a match); a plain listing walks the catalog in code order, where nearly every row is one."""
        v = resource_versions
        total: int | None = None
        query = (
            select(resources, v.c.version, v.c.state, v.c.document, v.c.created_at.label("version_created_at"),
                   v.c.published_at)
            .limit(limit)
        )
        joined = resources.join(v, v.c.code == resources.c.code)
        pairs = None
        """(code, version, number of matches) of the page, when the matches are read from the index."""
        if self.connection.dialect.name == "sqlite":
            expression = self._fts_match(flt)
            if expression is None:
                return [], 0
            # Search ids follow (code, version) order, so the page is the first ``limit`` matching FTS5
            # rows above the last code shown: the index stops there, however many rows match.
            bound = 0
            if after_code:
                bound = self.connection.exec_driver_sql(
                    "SELECT search_id FROM resource_versions WHERE code <= ? ORDER BY code DESC, version DESC "
                    "LIMIT 1", (after_code,)).scalar() or 0
            ids = self.connection.exec_driver_sql(
                "SELECT rowid FROM resource_search WHERE resource_search MATCH ? AND rowid > ? ORDER BY rowid "
                "LIMIT ?", (expression, bound, limit)).scalars().all()
            if not ids:
                return [], 0
            # By search id (SQLite plans ``(code, version) IN (…)`` under a join as a scan: 60 ms at
            # 10^5), through the driver: SQLAlchemy's statement building and result processing cost
            # more than the query itself here.
            rows = self.connection.exec_driver_sql(
                "SELECT r.code, r.status, r.published_version, r.retired_at, r.origin_node, v.version, v.state, "
                "v.document, v.created_at, v.published_at FROM resource_versions v JOIN resources r "
                f"ON r.code = v.code WHERE v.search_id IN ({', '.join('?' * len(ids))}) ORDER BY v.search_id",
                tuple(ids)).all()
            return [Resource(code, enum_member(ResourceStatus, status), ResourceVersion(
                metadata_from_trusted_dict(json.loads(document)), version, enum_member(VersionState, state),
                _sqlite_time(created), _sqlite_time(published)), published_version, _sqlite_time(retired),
                origin_node=origin) for code, status, published_version, retired, origin, version, state, document,
                created, published in rows], None
        elif self._narrowed(flt):
            # Ordered by an expression, not by the primary key: the planner, expecting matches spread
            # evenly, would walk the key in order and filter, but codes cluster by classification
            # (measured at 10^5: 5.5 s to pass 90,000 rows of a provider's neighbours). The GIN index
            # finds the matches; a top-N sort of their codes is cheap next to that.
            pairs = None
            for window in (WALK_WINDOW // 8, WALK_WINDOW) if after_code else ():
                pairs = self._walked_page(flt, after_code, limit, window)
                if pairs is not None:
                    break
            if pairs is None:
                matches = self._array_matches(flt, after_code)
                pairs = self.connection.execute(
                    select(matches.c.code, matches.c.version, func.count().over())
                    .order_by(matches.c.code.concat("")).limit(limit)).all()
        else:
            # A listing of (nearly) everything: walk the primary key with the plain columns' conditions.
            join, conditions = self._filtered(flt)
            query = query.select_from(join).where(*conditions, resources.c.code > after_code) \
                .order_by(resources.c.code)
        if pairs is not None:
            if not pairs:
                return [], 0
            total = pairs[0][2]  # None on SQLite
            query = (query.select_from(joined).where(tuple_(v.c.code, v.c.version).in_([(p[0], p[1]) for p in pairs]))
                     .order_by(resources.c.code))
        out = []
        for row in self.connection.execute(query):
            version = ResourceVersion(
                metadata_from_trusted_dict(json.loads(row.document)), row.version, VersionState(row.state),
                row.version_created_at, row.published_at,
            )
            out.append(Resource(row.code, ResourceStatus(row.status), version, row.published_version, row.retired_at,
                                origin_node=row.origin_node))
        return out, total

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
            return 0 if expression is None else self._fts_count(expression, at_most)
        if self._narrowed(flt):
            matches = self._array_matches(flt, "")
            matching = select(matches.c.code).limit(at_most).subquery()
        else:
            join, conditions = self._filtered(flt)
            matching = select(resources.c.code).select_from(join).where(*conditions).limit(at_most).subquery()
        return self.connection.execute(select(func.count()).select_from(matching)).scalar_one()

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
        self._bulk_insert(resources, [
            {"code": r.code, "status": r.status.value, "provider_code": r.provider_code,
             "latest_version": r.latest.version, "published_version": r.published_version,
             "created_at": now, "updated_at": now, "retired_at": r.retired_at}
            for r in new
        ])
        rows, _ = self._insert_versions([(r.code, r.latest) for r in new], heads=new)
        if self.connection.dialect.name == "sqlite":
            self._index_insert({row["search_id"]: fts_document(indexed_version(
                row, r.status.value, latest_version=r.latest.version, published_version=r.published_version))
                for row, r in zip(rows, new, strict=True)})

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
        elif self._insert_versions([(resource.code, latest)], skip=resource.code)[1]:
            before = {}  # renumbered: the index holds nothing of this resource now
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
        if self.get_version(resource.code, resource.latest.version) is None and self._insert_versions(
                [(resource.code, resource.latest)], skip=resource.code)[1]:
            before = {}  # renumbered: the index holds nothing of this resource now
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
                         "classification": shown.metadata.classification.value})
        self._bulk_insert(catalog_events, rows)

    def _insert_versions(self, versions: Sequence[tuple[str, ResourceVersion]],
                         heads: Sequence[Resource] | None = None, skip: str | None = None) -> tuple[list[dict], bool]:
        """Insert version rows. With ``heads`` (new resources) PostgreSQL's terms are written at once;
        otherwise ``_reindex`` writes them, and SQLite's FTS5 rows are always the caller's."""
        values = [self._version_values(code, version) for code, version in versions]
        renumbered = False
        if self.connection.dialect.name == "sqlite":
            renumbered = self._assign_search_ids(values, skip)
        elif heads is not None:
            for row, head in zip(values, heads, strict=True):
                row["search_terms"] = array_terms(indexed_version(
                    row, head.status.value, latest_version=head.latest.version,
                    published_version=head.published_version))
        self._bulk_insert(resource_versions, values)
        return values, renumbered

    def _bulk_insert(self, table: Table, rows: Sequence[dict]) -> None:
        """One driver executemany of rows with the same keys. Why not ``connection.execute(insert(t),
        rows)``: SQLAlchemy compiles and processes every parameter of every row in Python, most of an
        import's time; here only the columns whose type converts values (timestamps) are processed."""
        if not rows:
            return
        dialect = self.connection.dialect
        columns = list(rows[0])
        processors = [table.c[name].type._cached_bind_processor(dialect) for name in columns]
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
        self.connection.exec_driver_sql(statement, params)

    def _assign_search_ids(self, values: list[dict], skip: str | None = None) -> bool:
        """SQLite: give the new version rows search ids in (code, version) order among the stored ones
        (writers hold SQLite's write lock, BEGIN IMMEDIATE, so the neighbours cannot change meanwhile);
        True when the stored rows had to be renumbered first (their FTS5 rows were rebuilt, except those
        of the resource ``skip``, which its caller reindexes from nothing)."""
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
                self._renumber_search_ids(skip)
                self._assign_search_ids(values)
                return True
            plan.append((ordered[start:end], ids))
            start = end
        for run, ids in plan:
            for row, search_id in zip(run, ids, strict=True):
                row["search_id"] = search_id
        return False

    def _renumber_search_ids(self, skip: str | None) -> None:
        """Space every stored version's search id SEARCH_ID_SPACING apart again, in (code, version)
        order, and rebuild the FTS5 table with them (rare: when inserts at one place used a gap up)."""
        v, r = resource_versions, resources
        rows = self.connection.execute(
            select(v.c.code, v.c.version, v.c.search_text, v.c.classification, v.c.share_type, v.c.open_type,
                   v.c.update_cycle, v.c.provider_code, r.c.status, r.c.latest_version, r.c.published_version)
            .select_from(v.join(r, r.c.code == v.c.code)).order_by(v.c.code, v.c.version)).all()
        sql = self.connection.exec_driver_sql
        sql("INSERT INTO resource_search (resource_search) VALUES ('delete-all')")
        sql("UPDATE resource_versions SET search_id = NULL")
        ids = [SEARCH_ID_SPACING * (i + 1) for i in range(len(rows))]
        sql("UPDATE resource_versions SET search_id = ? WHERE code = ? AND version = ?",
            [(i, row.code, row.version) for i, row in zip(ids, rows, strict=True)])
        self._index_insert({i: fts_document(indexed_version(
            row._mapping, row.status, latest_version=row.latest_version, published_version=row.published_version))
            for i, row in zip(ids, rows, strict=True) if row.code != skip})

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
            select(v.c.search_id, v.c.code, v.c.version, v.c.search_text, v.c.classification, v.c.share_type,
                   v.c.open_type, v.c.update_cycle, v.c.provider_code, r.c.status, r.c.latest_version,
                   r.c.published_version)
            .select_from(v.join(r, r.c.code == v.c.code)).where(v.c.code == code)).all()
        out: dict = {}
        for row in rows:
            entry = indexed_version(row._mapping, row.status, latest_version=row.latest_version,
                                    published_version=row.published_version)
            if sqlite:
                out[row.search_id] = fts_document(entry)
            else:
                out[row.version] = array_terms(entry)
        return out

    def _reindex(self, code: str, before: dict) -> None:
        """Bring the resource's index entries from ``before`` to what its rows say now (status and
        visibility are words of every version's entry, so a publication or retirement rewrites them)."""
        after = self._indexed_documents(code)
        if self.connection.dialect.name != "sqlite":
            v = resource_versions
            for version, terms in after.items():
                if before.get(version) != terms:
                    self.connection.execute(update(v).where(v.c.code == code, v.c.version == version)
                                            .values(search_terms=terms))
            return
        stale = [(search_id, document) for search_id, document in before.items() if after.get(search_id) != document]
        if stale:
            self.connection.exec_driver_sql(
                "INSERT INTO resource_search (resource_search, rowid, terms) VALUES ('delete', ?, ?)", stale)
        self._index_insert({search_id: document for search_id, document in after.items()
                            if before.get(search_id) != document})

    def _index_insert(self, documents: dict[int, str]) -> None:
        if documents:
            self.connection.exec_driver_sql("INSERT INTO resource_search (rowid, terms) VALUES (?, ?)",
                                            list(documents.items()))

    @staticmethod
    def _version_values(code: str, version: ResourceVersion) -> dict:
        meta = version.metadata
        return {
            "code": code, "version": version.version, "state": version.state.value, "name": meta.name,
            "classification": meta.classification.value, "provider_code": meta.provider_code,
            "provider_name": meta.provider_name, "share_type": meta.share_type.value,
            "open_type": meta.open_type.value, "update_cycle": meta.update_cycle.value,
            "search_text": meta.search_text(),
            "document": json.dumps(metadata_to_dict(meta), ensure_ascii=False, sort_keys=True),
            "created_at": version.created_at, "published_at": version.published_at,
        }
