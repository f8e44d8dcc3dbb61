"""Catalog search through the bigram index gives exactly the substring filter's answers, on both databases.

The index (node/storage/search_index.py) only narrows the rows; these tests compare its results with a
plain Python ``all(word in search_text ...)`` over random catalogs (Chinese, ASCII of both cases,
digits, punctuation and FTS/LIKE syntax characters mixed), through creates, draft rewrites and
publications, and check that hostile query strings are answered as plain text or refused naming ``query``.
"""

from __future__ import annotations

import base64
import dataclasses
import itertools
import json
from collections.abc import Iterator

import pytest
from alembic import command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import column, insert, table

from catalog import model
from catalog.errors import InvalidField
from catalog.model import Item, ItemDataType, ResourceMetadata, ResourceStatus
from node.services.catalog import COUNT_LIMIT, CatalogApplication, SearchOrder
from node.storage.catalog_repository import CatalogRepository, ResourceFilter
from node.storage.database import alembic_config, make_engine, migrate
from node.storage.tables import resource_versions, resources
from node.storage.unit_of_work import SqlUnitOfWorkFactory
from security.identity import Principal
from tests.conftest import OTHER_PROVIDER, FixedClock, resource

SYSTEM = Principal.system("test")
# Few distinct characters, so random queries often hit and bigrams often occur apart in a text.
ALPHABET = "低保救助养老机构婚姻登记社会组织aAbBzZ09 　.,%_\\\"*()-:^NEAR"
FEW = "低保救助aA "
"""A tiny alphabet: its texts often hold every bigram of a word without the word (the LIKE check's case)."""
texts = st.one_of(st.text(alphabet=ALPHABET, min_size=1, max_size=24),
                  st.text(alphabet=FEW, min_size=1, max_size=16)).filter(lambda s: s.strip())
codes = itertools.count(1)


@pytest.fixture
def app(database_url: str, clock: FixedClock) -> Iterator[CatalogApplication]:
    migrate(database_url)
    engine = make_engine(database_url)
    yield CatalogApplication(SqlUnitOfWorkFactory(engine), clock)
    engine.dispose()


def listed(app: CatalogApplication, query: str, page_size: int = 7, order: SearchOrder = SearchOrder.CODE) -> list[str]:
    """Every code a search returns, following the page tokens; the first page's total is checked too."""
    found, token, total = [], "", None
    while True:
        page = app.list(SYSTEM, ResourceFilter(query=query), page_size=page_size, page_token=token, order=order)
        found.extend(r.code for r in page.resources)
        total = page.total_size if total is None else total
        token = page.next_page_token
        if not token:
            assert total == len(found), (query, order)
            return found


def expected(catalog: dict[str, ResourceMetadata], query: str) -> list[str]:
    words = query.lower().split()
    return sorted(code for code, meta in catalog.items() if all(w in meta.search_text() for w in words))


def expected_by_relevance(catalog: dict[str, ResourceMetadata], query: str) -> list[str]:
    """Every word in the name first, then each in the name or the summary, then the others; by code within."""
    words = query.lower().split()

    def rank(meta: ResourceMetadata) -> int:
        name, summary = meta.name.lower(), meta.summary.lower()
        if all(w in name for w in words):
            return 0
        return 1 if all(w in name or w in summary for w in words) else 2
    return [code for _rank, code in sorted((rank(catalog[code]), code) for code in expected(catalog, query))]


def entry(name: str, summary: str, item: str, keyword: str) -> ResourceMetadata:
    return resource(f"311140001/{next(codes):06d}", name=name, summary=summary,
                    items=(Item(item, ItemDataType.STRING, 10, False),), keywords=(keyword,))


@dataclasses.dataclass
class Stored:
    """What the database holds, as the test wrote it (it grows over hypothesis's examples)."""

    catalog: dict[str, ResourceMetadata] = dataclasses.field(default_factory=dict)


@pytest.fixture
def stored() -> Stored:
    return Stored()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_search_equals_the_substring_filter(app: CatalogApplication, stored: Stored, data: st.DataObject):
    metas = [entry(*data.draw(st.tuples(texts, texts, texts, texts))) for _ in range(data.draw(st.integers(1, 6)))]
    # ``stored`` follows each write at once: hypothesis may end an example at any later draw (an overrun
    # while it generates or shrinks), and the database keeps what the example wrote before that.
    app.import_resources(SYSTEM, metas)
    stored.catalog.update({m.code: m for m in metas})
    change = data.draw(st.sampled_from(["none", "rewritten", "published"]))
    if change == "rewritten":
        # A draft rewritten in place: its old terms must leave the index.
        metas[0] = dataclasses.replace(metas[0], name=data.draw(texts), summary=data.draw(texts))
        app.update(SYSTEM, metas[0])
        stored.catalog[metas[0].code] = metas[0]
    elif change == "published":
        # Published, then a new draft version above it: the system caller sees the draft.
        new_name = data.draw(texts)
        app.publish(SYSTEM, metas[0].code)
        metas[0] = dataclasses.replace(metas[0], name=new_name)
        app.update(SYSTEM, metas[0])
        stored.catalog[metas[0].code] = metas[0]
    # Queries come from this example's entries (drawing from the stored ones would make hypothesis's
    # replays draw differently); the answer is compared with every entry stored so far.
    source = data.draw(st.sampled_from(metas)).search_text()
    start = data.draw(st.integers(0, len(source) - 1))
    queries = [
        source[start:start + data.draw(st.integers(1, 6))],
        data.draw(texts),
        " ".join(data.draw(st.lists(texts, min_size=1, max_size=3))),
        data.draw(st.text(alphabet=FEW, min_size=3, max_size=6)),
    ]
    for query in queries:
        if query.split():
            assert listed(app, query) == expected(stored.catalog, query), query
            assert listed(app, query, 2, SearchOrder.RELEVANCE) == expected_by_relevance(stored.catalog, query), query


@pytest.mark.parametrize("query", ['"', "*", "NEAR", "near(a b)", "%", "_", "\\", "a%b", "^", "-", "：，。",
                                   "AND OR NOT", "保", "z", '" OR 1=1 --', "低保'; DROP TABLE resources; --"])
def test_syntax_characters_are_plain_text(app: CatalogApplication, query: str):
    metas = [entry("低保" + query, "摘要", "项", "词"), entry("养老", "摘要", "项", "词")]
    app.import_resources(SYSTEM, metas)
    catalog = {m.code: m for m in metas}
    assert listed(app, query) == expected(catalog, query)
    assert listed(app, query, 1, SearchOrder.RELEVANCE) == expected_by_relevance(catalog, query)


def test_bigrams_apart_do_not_match(app: CatalogApplication):
    metas = [entry("养老机", "老机构", "项", "词"), entry("养老机构", "摘要", "项", "词")]
    app.import_resources(SYSTEM, metas)
    assert listed(app, "养老机构") == [metas[1].code]


def test_only_punctuation_and_white_space_queries(app: CatalogApplication):
    metas = [entry("低保（2024）", "...", "项", "词"), entry("养老", "摘要", "项", "词")]
    app.import_resources(SYSTEM, metas)
    assert listed(app, "...") == [metas[0].code]
    assert listed(app, "（") == [metas[0].code]
    assert len(listed(app, "   ")) == 2  # no words: no text condition


def test_a_draft_rewritten_in_place_is_listed_as_it_is_now(app: CatalogApplication):
    """Pages remember decoded documents by their text: a draft rewritten under the same version number
    is listed with its new metadata, not the remembered one."""
    meta = entry("低保名册", "旧摘要", "项", "词")
    app.create(SYSTEM, meta)
    assert app.list(SYSTEM, ResourceFilter(query="低保")).resources[0].latest.metadata.summary == "旧摘要"
    app.update(SYSTEM, dataclasses.replace(meta, summary="新摘要"))
    shown = app.list(SYSTEM, ResourceFilter(query="低保")).resources[0].latest
    assert (shown.version, shown.metadata.summary) == (1, "新摘要")
    assert app.get(SYSTEM, meta.code)[1].metadata.summary == "新摘要"


def test_overlong_query_is_refused_naming_the_field(app: CatalogApplication):
    with pytest.raises(InvalidField) as raised:
        app.list(SYSTEM, ResourceFilter(query="低" * 10_000))
    assert raised.value.problems[0].field == "query"


def test_totals_are_exact_to_the_limit_then_a_lower_bound(app: CatalogApplication):
    metas = [entry(f"低保{i}", "摘要", "项", "词") for i in range(COUNT_LIMIT + 5)]
    for start in range(0, len(metas), 5_000):
        app.import_resources(SYSTEM, metas[start:start + 5_000])
    page = app.list(SYSTEM, ResourceFilter(query="低保"), page_size=10)
    assert (page.total_size, page.total_is_lower_bound) == (COUNT_LIMIT, True)
    # Past the count's limit PostgreSQL's first page comes from a walk in code order, not the count's pass.
    assert [r.code for r in page.resources] == sorted(m.code for m in metas)[:10]
    page = app.list(SYSTEM, ResourceFilter(), page_size=10)
    assert (page.total_size, page.total_is_lower_bound) == (COUNT_LIMIT, True)
    page = app.list(SYSTEM, ResourceFilter(query="低保1"), page_size=10)
    exact = sum(1 for m in metas if "低保1" in m.name)
    assert (page.total_size, page.total_is_lower_bound) == (exact, False)


def test_postgresql_counts_a_first_page_as_far_as_the_service_shows():
    """The repository's count on its way stops at COUNT_LIMIT + 1, what the service reads as "10,000+"."""
    from node.storage.catalog_repository import FIRST_PAGE_COUNT

    assert FIRST_PAGE_COUNT == COUNT_LIMIT + 1


def test_edited_or_foreign_page_tokens_are_refused(app: CatalogApplication, database_url: str, clock: FixedClock):
    app.import_resources(SYSTEM, [entry(f"低保{i}", "摘要", "项", "词") for i in range(5)])
    token = app.list(SYSTEM, ResourceFilter(query="低保"), page_size=2).next_page_token
    assert app.list(SYSTEM, ResourceFilter(query="低保"), page_size=2, page_token=token).resources
    payload, mac = token.removeprefix("cp1.").split(".")
    decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    edited = "cp1." + base64.urlsafe_b64encode(decoded.replace(b'"total":5', b'"total":9')).decode().rstrip("=")
    unsigned = base64.urlsafe_b64encode(json.dumps({"after": "", "filter": "x", "total": 1}).encode()).decode()
    other_node = CatalogApplication(app.uow, clock)  # another key: another node's token
    foreign = other_node.list(SYSTEM, ResourceFilter(query="低保"), page_size=2).next_page_token
    for bad in (edited + "." + mac, token[:-2], unsigned, foreign, "cp1." + "A" * 3000):
        with pytest.raises(InvalidField) as raised:
            app.list(SYSTEM, ResourceFilter(query="低保"), page_size=2, page_token=bad)
        assert raised.value.problems[0].field == "page_token", bad
    with pytest.raises(InvalidField, match="other filters"):
        app.list(SYSTEM, ResourceFilter(query="保"), page_size=2, page_token=token)
    with pytest.raises(InvalidField, match="another order"):
        app.list(SYSTEM, ResourceFilter(query="低保"), page_size=2, page_token=token, order=SearchOrder.RELEVANCE)


def test_relevance_order_puts_the_name_before_the_summary_before_the_items(app: CatalogApplication):
    in_items = entry("名册", "摘要", "低保金额", "词")
    in_summary = entry("名册", "低保对象的摘要", "项", "词")
    in_name = entry("低保名册", "摘要", "项", "词")
    split = entry("低保名册", "救助", "项", "词")  # one word in the name, the other in the summary
    app.import_resources(SYSTEM, [in_items, in_summary, in_name, split])
    assert in_items.code < in_summary.code < in_name.code  # code order is the reverse of relevance
    assert listed(app, "低保", 1, SearchOrder.RELEVANCE) == [in_name.code, split.code, in_summary.code, in_items.code]
    assert listed(app, "低保 救助", 1, SearchOrder.RELEVANCE) == [split.code]
    assert listed(app, "保 册", 1, SearchOrder.RELEVANCE) == [in_name.code, split.code, in_summary.code, in_items.code]
    assert listed(app, "", 1, SearchOrder.RELEVANCE) == listed(app, "", 1)  # no words: code order


def test_a_remembered_count_is_never_given_after_the_index_changed(app: CatalogApplication, database_url: str,
                                                                   clock: FixedClock):
    """Counts are kept per index generation; a change through another engine (another process's
    connection) moves the generation on, so the next first page counts again."""
    app.import_resources(SYSTEM, [entry(f"低保{i}", "摘要", "项", "词") for i in range(5)])
    assert app.list(SYSTEM, ResourceFilter(query="低保"), page_size=2).total_size == 5
    engine = make_engine(database_url)
    try:
        other = CatalogApplication(SqlUnitOfWorkFactory(engine), clock)
        other.import_resources(SYSTEM, [entry("低保新", "摘要", "项", "词")])
        assert app.list(SYSTEM, ResourceFilter(query="低保"), page_size=2).total_size == 6
        other.update(SYSTEM, dataclasses.replace(other.get(SYSTEM, listed(app, "低保新")[0])[1].metadata, name="养老"))
        assert app.list(SYSTEM, ResourceFilter(query="低保"), page_size=2).total_size == 5
    finally:
        engine.dispose()


def test_a_count_made_by_a_writing_transaction_is_not_remembered(app: CatalogApplication, database_url: str,
                                                                  clock: FixedClock):
    """A transaction that wrote sees its own rows and the generation it moved on; if it rolls back, the next
    writer commits that same generation with other rows, so its count must not be kept."""
    app.import_resources(SYSTEM, [entry(f"低保{i}", "摘要", "项", "词") for i in range(5)])
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            repository = CatalogRepository(connection)
            repository.add(model.create(entry("低保回滚", "摘要", "项", "词"), clock()), clock())
            assert repository.count(ResourceFilter(query="低保"), at_most=COUNT_LIMIT + 1) == 6
            connection.rollback()
        app.import_resources(SYSTEM, [entry("养老", "摘要", "项", "词")])
        assert app.list(SYSTEM, ResourceFilter(query="低保"), page_size=2).total_size == 5
    finally:
        engine.dispose()


def test_relevance_pages_past_the_count_limit_merge_the_ranks_in_order(app: CatalogApplication):
    """Past COUNT_LIMIT matches a relevance page is each rank's walk in code order, merged: the same order
    as ranking every match."""
    metas = [entry(f"名册{i}", "摘要", "低保", "词") if i % 3 else entry(f"低保{i}", "摘要", "项", "词")
             for i in range(COUNT_LIMIT + 5)]
    for start in range(0, len(metas), 5_000):
        app.import_resources(SYSTEM, metas[start:start + 5_000])
    in_name = sorted(m.code for m in metas if "低保" in m.name)
    in_items = sorted(m.code for m in metas if "低保" not in m.name)
    first = app.list(SYSTEM, ResourceFilter(query="低保"), page_size=10, order=SearchOrder.RELEVANCE)
    assert (first.total_size, first.total_is_lower_bound) == (COUNT_LIMIT, True)
    assert [r.code for r in first.resources] == in_name[:10]
    token, codes = "", []
    page = app.list(SYSTEM, ResourceFilter(query="低保"), page_size=500, order=SearchOrder.RELEVANCE)
    codes.extend(r.code for r in page.resources)
    while len(codes) < len(in_name) + 20:
        token = page.next_page_token
        page = app.list(SYSTEM, ResourceFilter(query="低保"), page_size=500, page_token=token,
                        order=SearchOrder.RELEVANCE)
        codes.extend(r.code for r in page.resources)
    assert codes[:len(in_name) + 20] == in_name + in_items[:20]


def test_migration_0011_indexes_the_catalog_already_stored(database_url: str, clock: FixedClock):
    command.upgrade(alembic_config(database_url), "0010")
    engine = make_engine(database_url)
    metas = [entry("迁移前的低保资源", "摘要", "项", "词"), entry("养老机构", "摘要", "项", "词")]
    with engine.begin() as connection:  # the rows as the code of schema 0010 wrote them
        for index, meta in enumerate(metas):
            created = model.create(meta, clock())
            if index == 0:
                created = model.publish(created, clock())
            version = CatalogRepository._version_values(created.code, created.latest)
            old_versions = table("resource_versions",
                                 *(column(name, resource_versions.c[name].type) for name in version))
            connection.execute(insert(resources).values(
                code=created.code, status=created.status.value, provider_code=created.provider_code,
                latest_version=1, published_version=created.published_version, created_at=clock(),
                updated_at=clock()))
            connection.execute(insert(old_versions).values(version))
    command.upgrade(alembic_config(database_url), "head")
    app = CatalogApplication(SqlUnitOfWorkFactory(engine), clock)
    assert listed(app, "低保") == [metas[0].code]
    assert listed(app, "机构") == [metas[1].code]
    assert app.list(SYSTEM, ResourceFilter(status=ResourceStatus.PUBLISHED)).total_size == 1
    other = Principal(subject="x", department_code=OTHER_PROVIDER, roles=frozenset({"consumer"}))
    assert [r.code for r in app.list(other, ResourceFilter(query="资源")).resources] == [metas[0].code]
    engine.dispose()


def test_search_ids_follow_code_order_through_inserts_anywhere(app: CatalogApplication, database_url: str,
                                                              monkeypatch: pytest.MonkeyPatch):
    """Codes arrive in random order, single and in batches, with new versions: on SQLite the gaps are made
    tiny so respacing (FTS5 rows moved) happens many times; pages stay those of the substring filter."""
    import random

    from node.storage import catalog_repository, search_index

    monkeypatch.setattr(search_index, "SEARCH_ID_SPACING", 4)
    monkeypatch.setattr(catalog_repository, "SEARCH_ID_SPACING", 4)
    monkeypatch.setattr(search_index, "SEARCH_ID_STEP", 1)
    monkeypatch.setattr(catalog_repository, "SEARCH_ID_STEP", 1)
    rng = random.Random(16)
    numbers = rng.sample(range(10_000, 99_999), 60)
    words = ["低保", "救助", "养老", "婚姻"]
    catalog: dict[str, ResourceMetadata] = {}
    for start in range(0, len(numbers), 12):
        batch = [resource(f"311140001/{n:06d}", name=rng.choice(words) + rng.choice(words), summary="摘要",
                          items=(Item("项", ItemDataType.STRING, 10, False),), keywords=("词",))
                 for n in numbers[start:start + 12]]
        app.import_resources(SYSTEM, batch[:-3], publish=start % 24 == 0)
        for meta in batch[-3:]:
            app.create(SYSTEM, meta)
        catalog.update({m.code: m for m in batch})
        changed = dataclasses.replace(catalog[rng.choice(sorted(catalog))], name="低保婚姻")
        if app.get(SYSTEM, changed.code)[0].status is ResourceStatus.PUBLISHED:
            app.update(SYSTEM, changed)
            app.publish(SYSTEM, changed.code)
        else:
            app.update(SYSTEM, changed)
        catalog[changed.code] = changed
    for query in [*words, "低保婚姻", "摘要"]:
        assert listed(app, query, page_size=5) == expected(catalog, query), query
    if database_url.startswith("sqlite"):
        engine = make_engine(database_url)
        with engine.connect() as connection:
            ids = connection.exec_driver_sql(
                "SELECT search_id FROM resource_versions ORDER BY code, version").scalars().all()
        engine.dispose()
        assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_a_used_up_gap_respaces_only_the_versions_around_it(sqlite_url: str, clock: FixedClock,
                                                            monkeypatch: pytest.MonkeyPatch):
    """A provider adding code after code at one place (just below the next front code) uses that gap up
    again and again: each time only a window around it is respaced, never the catalog (which once read
    every version into memory: 6.4 GB at 10^6); the far versions keep their ids and searches stay exact."""
    from node.storage import catalog_repository, search_index

    monkeypatch.setattr(search_index, "SEARCH_ID_SPACING", 1 << 8)
    monkeypatch.setattr(catalog_repository, "SEARCH_ID_SPACING", 1 << 8)
    monkeypatch.setattr(search_index, "SEARCH_ID_STEP", 1)
    monkeypatch.setattr(catalog_repository, "SEARCH_ID_STEP", 1)
    migrate(sqlite_url)
    engine = make_engine(sqlite_url)
    app = CatalogApplication(SqlUnitOfWorkFactory(engine), clock)

    def meta(code: str, name: str) -> ResourceMetadata:
        return resource(code, name=name, summary="摘要", items=(Item("项", ItemDataType.STRING, 10, False),),
                        keywords=("词",))

    catalog = {m.code: m for m in [*(meta(f"311140001/{n:06d}", "低保" if n % 2 else "救助") for n in range(1, 401)),
                                   *(meta(f"311140002/{n:06d}", "养老") for n in range(1, 401))]}
    app.import_resources(SYSTEM, list(catalog.values()), publish=True)

    def ids() -> dict[tuple[str, int], int]:
        with engine.connect() as connection:
            return {(code, version): search_id for code, version, search_id in connection.exec_driver_sql(
                "SELECT code, version, search_id FROM resource_versions ORDER BY code, version")}

    first = ids()
    for n in range(401, 701):  # a gap of 256 at step 1: used up every 255 inserts at this one place
        created = meta(f"311140001/{n:06d}", "低保婚姻" if n % 3 else "救助")
        app.create(SYSTEM, created)
        catalog[created.code] = created
    # A new version between two neighbours one id apart: a respacing while its resource is being changed
    # (its index documents move with it).
    app.publish(SYSTEM, "311140001/000690")
    changed = dataclasses.replace(catalog["311140001/000690"], name="婚姻")
    app.update(SYSTEM, changed)
    app.publish(SYSTEM, changed.code)
    catalog[changed.code] = changed
    now = ids()
    assert list(now.values()) == sorted(now.values()) and len(set(now.values())) == len(now)
    moved = [key for key, search_id in first.items() if now[key] != search_id]
    assert moved, "the gap was never used up: the test no longer tests respacing"
    assert len(moved) <= 4 * catalog_repository.RESPACE_RADIUS
    assert all(now[key] == search_id for key, search_id in list(first.items())[:300])
    for query in ["低保", "救助", "养老", "婚姻", "低保婚姻", "摘要"]:
        assert listed(app, query, page_size=50) == expected(catalog, query), query
        assert app.list(SYSTEM, ResourceFilter(query=query)).total_size == len(expected(catalog, query)), query
    engine.dispose()


def test_migration_0023_puts_search_ids_in_code_order(database_url: str, clock: FixedClock):
    """Before 0023 a search id was max + 1 at insert: codes added in descending order got descending ids.
    After it, ids follow code order and searches still answer exactly (SQLite; PostgreSQL just upgrades)."""
    from node.storage.search_index import array_terms, fts_document, indexed_version

    command.upgrade(alembic_config(database_url), "0020")
    engine = make_engine(database_url)
    app = CatalogApplication(SqlUnitOfWorkFactory(engine), clock)
    metas = [entry(f"低保{i}", "摘要", "项", "词") for i in range(5)]
    with engine.begin() as connection:  # the rows as the code of schema 0020 wrote them (its index: below)
        for meta in metas:
            created = model.create(meta, clock())
            version = CatalogRepository._version_values(created.code, created.latest)
            if not database_url.startswith("sqlite"):
                version["search_terms"] = array_terms(indexed_version(
                    version, created.status.value, latest_version=1, published_version=None))
            old_versions = table("resource_versions",
                                 *(column(name, resource_versions.c[name].type) for name in version))
            connection.execute(insert(resources).values(
                code=created.code, status=created.status.value, provider_code=created.provider_code,
                latest_version=1, published_version=None, created_at=clock(), updated_at=clock()))
            connection.execute(insert(old_versions).values(version))
    if database_url.startswith("sqlite"):
        with engine.begin() as connection:  # ids as the old allocation gave them to codes added last-first
            sql = connection.exec_driver_sql
            rows = sql("SELECT v.code, v.version, v.search_text, v.classification, v.share_type, v.open_type, "
                       "v.update_cycle, v.provider_code, r.status, r.latest_version, r.published_version "
                       "FROM resource_versions v JOIN resources r ON r.code = v.code "
                       "ORDER BY v.code DESC").mappings().all()
            sql("INSERT INTO resource_search (resource_search) VALUES ('delete-all')")
            for new_id, row in enumerate(rows, start=1):
                sql("UPDATE resource_versions SET search_id = ? WHERE code = ?", (new_id, row["code"]))
                sql("INSERT INTO resource_search (rowid, terms) VALUES (?, ?)", (new_id, fts_document(indexed_version(
                    row, row["status"], latest_version=row["latest_version"],
                    published_version=row["published_version"]))))
    command.upgrade(alembic_config(database_url), "head")
    assert listed(app, "低保", page_size=2) == sorted(m.code for m in metas)
    if database_url.startswith("sqlite"):
        with engine.connect() as connection:
            ids = connection.exec_driver_sql(
                "SELECT search_id FROM resource_versions ORDER BY code").scalars().all()
        assert ids == sorted(ids)
    engine.dispose()


def test_migration_0035_rebuilds_the_index_by_field_and_back(app: CatalogApplication, database_url: str):
    """0035 rebuilds the stored catalog's FTS5 rows with a column per field (relevance needs them); its
    downgrade gives the one-column index back. PostgreSQL: nothing changes, searches answer the same."""
    metas = [entry("名册", "低保摘要", "项", "词"), entry("低保名册", "摘要", "项", "词")]
    app.import_resources(SYSTEM, metas)
    assert listed(app, "低保", 1, SearchOrder.RELEVANCE) == [metas[1].code, metas[0].code]
    command.downgrade(alembic_config(database_url), "0034")
    if database_url.startswith("sqlite"):
        engine = make_engine(database_url)
        with engine.connect() as connection:
            found = connection.exec_driver_sql(
                "SELECT rowid FROM resource_search WHERE terms MATCH '\"低保\"'").scalars().all()
        engine.dispose()
        assert len(found) == 2
    command.upgrade(alembic_config(database_url), "head")
    assert listed(app, "低保", 1, SearchOrder.RELEVANCE) == [metas[1].code, metas[0].code]
    assert listed(app, "名册") == [m.code for m in metas]


def test_migration_0038_moves_postgresql_s_index_to_its_narrow_rows(postgres_url: str, clock: FixedClock):
    """Rows as the code of schema 0034 wrote them (terms and attribute words in ``search_terms``, under a
    GIN index): after 0038 every search, filter, visibility and count answers from ``catalog_search`` as the
    substring filter does, and changes after the upgrade keep it current."""
    from node.storage.search_index import array_terms, indexed_version

    command.upgrade(alembic_config(postgres_url), "0034")
    engine = make_engine(postgres_url)
    metas = [entry("迁移前的低保资源", "摘要", "项", "词"), entry("养老机构", "救助 摘要", "项", "词"),
             dataclasses.replace(entry("低保草稿", "摘要", "项", "词"), provider_code=OTHER_PROVIDER)]
    heads = []
    with engine.begin() as connection:
        for index, meta in enumerate(metas):
            created = model.create(meta, clock())
            if index == 0:
                created = model.publish(created, clock())
            heads.append(created)
            version = CatalogRepository._version_values(created.code, created.latest)
            version["search_terms"] = array_terms(indexed_version(
                version, created.status.value, latest_version=1, published_version=created.published_version))
            connection.execute(insert(resources).values(
                code=created.code, status=created.status.value, provider_code=created.provider_code,
                latest_version=1, published_version=created.published_version, created_at=clock(),
                updated_at=clock()))
            connection.execute(insert(resource_versions).values(version))
    command.upgrade(alembic_config(postgres_url), "head")
    app = CatalogApplication(SqlUnitOfWorkFactory(engine), clock)
    codes = [m.code for m in metas]
    assert listed(app, "低保") == [codes[0], codes[2]]
    assert listed(app, "养老机构") == [codes[1]]
    assert listed(app, "老机构 救助") == [codes[1]]
    assert listed(app, "养机") == []
    other = Principal(subject="x", department_code=OTHER_PROVIDER, roles=frozenset({"consumer"}))
    # The other department sees the published entry and its own draft, not the first provider's draft.
    assert [r.code for r in app.list(other, ResourceFilter(query="低保")).resources] == [codes[0], codes[2]]
    assert [r.code for r in app.list(other, ResourceFilter(query="养老")).resources] == []
    assert app.list(SYSTEM, ResourceFilter(status=ResourceStatus.PUBLISHED)).total_size == 1
    assert app.list(SYSTEM, ResourceFilter(query="摘要"), page_size=1).total_size == 3
    app.publish(SYSTEM, codes[1])
    assert [r.code for r in app.list(other, ResourceFilter(query="养老")).resources] == [codes[1]]
    app.update(SYSTEM, dataclasses.replace(metas[2], name="改名"))
    assert listed(app, "低保") == [codes[0]]
    engine.dispose()


def test_migration_0040_ranks_the_stored_catalog_on_its_narrow_rows(postgres_url: str, clock: FixedClock):
    """Rows stored before 0040 (no name and summary lengths, no rank terms): after the upgrade relevance
    pages rank them as the reference does, and the count is remembered and renewed by the next change."""
    migrate(postgres_url)
    engine = make_engine(postgres_url)
    app = CatalogApplication(SqlUnitOfWorkFactory(engine), clock)
    metas = [entry("名册", "摘要", "低保金额", "词"), entry("名册", "低保对象的摘要", "项", "词"),
             entry("低保名册", "摘要", "项", "词"), entry("Ärzte名册", "ÄRZTE 低保", "项", "词")]
    app.import_resources(SYSTEM, metas)
    command.downgrade(alembic_config(postgres_url), "0038")
    command.upgrade(alembic_config(postgres_url), "head")
    catalog = {m.code: m for m in metas}
    for query in ("低保", "名册", "ärzte 低保", "摘要"):
        assert listed(app, query, 1, SearchOrder.RELEVANCE) == expected_by_relevance(catalog, query), query
    assert app.list(SYSTEM, ResourceFilter(query="低保"), page_size=1, order=SearchOrder.RELEVANCE).total_size == 4
    app.import_resources(SYSTEM, [entry("低保新", "摘要", "项", "词")])
    assert app.list(SYSTEM, ResourceFilter(query="低保"), page_size=1, order=SearchOrder.RELEVANCE).total_size == 5
    engine.dispose()


def test_postgresql_imports_leave_no_gin_pending_entries(postgres_url: str, clock: FixedClock):
    """An import file's terms are merged into the GIN trees in its transaction: searches never read a
    pending list (gin_clean_pending_list answers how many pages it still had to merge)."""
    from node.storage.catalog_repository import FTS_BULK

    migrate(postgres_url)
    engine = make_engine(postgres_url)
    try:
        app = CatalogApplication(SqlUnitOfWorkFactory(engine), clock)
        app.import_resources(SYSTEM, [entry(f"低保{i}", f"摘要{i}", f"项{i}", "词") for i in range(FTS_BULK)])
        with engine.connect() as connection:
            pending = connection.exec_driver_sql(
                "SELECT gin_clean_pending_list('ix_catalog_search_terms'::regclass) "
                "+ gin_clean_pending_list('ix_catalog_search_name_terms'::regclass) "
                "+ gin_clean_pending_list('ix_catalog_search_lead_terms'::regclass)").scalar_one()
        assert pending == 0
    finally:
        engine.dispose()
