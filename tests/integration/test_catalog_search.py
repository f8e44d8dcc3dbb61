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
from node.services.catalog import COUNT_LIMIT, CatalogApplication
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


def listed(app: CatalogApplication, query: str, page_size: int = 7) -> list[str]:
    """Every code a search returns, following the page tokens."""
    found, token = [], ""
    while True:
        page = app.list(SYSTEM, ResourceFilter(query=query), page_size=page_size, page_token=token)
        found.extend(r.code for r in page.resources)
        token = page.next_page_token
        if not token:
            return found


def expected(catalog: dict[str, ResourceMetadata], query: str) -> list[str]:
    words = query.lower().split()
    return sorted(code for code, meta in catalog.items() if all(w in meta.search_text() for w in words))


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
    app.import_resources(SYSTEM, metas)
    change = data.draw(st.sampled_from(["none", "rewritten", "published"]))
    if change == "rewritten":
        # A draft rewritten in place: its old terms must leave the index.
        metas[0] = dataclasses.replace(metas[0], name=data.draw(texts), summary=data.draw(texts))
        app.update(SYSTEM, metas[0])
    elif change == "published":
        # Published, then a new draft version above it: the system caller sees the draft.
        app.publish(SYSTEM, metas[0].code)
        metas[0] = dataclasses.replace(metas[0], name=data.draw(texts))
        app.update(SYSTEM, metas[0])
    stored.catalog.update({m.code: m for m in metas})
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


@pytest.mark.parametrize("query", ['"', "*", "NEAR", "near(a b)", "%", "_", "\\", "a%b", "^", "-", "：，。",
                                   "AND OR NOT", "保", "z", '" OR 1=1 --', "低保'; DROP TABLE resources; --"])
def test_syntax_characters_are_plain_text(app: CatalogApplication, query: str):
    metas = [entry("低保" + query, "摘要", "项", "词"), entry("养老", "摘要", "项", "词")]
    app.import_resources(SYSTEM, metas)
    catalog = {m.code: m for m in metas}
    assert listed(app, query) == expected(catalog, query)


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
    page = app.list(SYSTEM, ResourceFilter(query="低保1"), page_size=10)
    exact = sum(1 for m in metas if "低保1" in m.name)
    assert (page.total_size, page.total_is_lower_bound) == (exact, False)


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
    tiny so renumbering (FTS5 rebuilt) happens many times; pages stay those of the substring filter."""
    import random

    from node.storage import catalog_repository, search_index

    monkeypatch.setattr(search_index, "SEARCH_ID_SPACING", 4)
    monkeypatch.setattr(catalog_repository, "SEARCH_ID_SPACING", 4)
    monkeypatch.setattr(search_index, "SEARCH_ID_STEP", 1)
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


def test_migration_0023_puts_search_ids_in_code_order(database_url: str, clock: FixedClock):
    """Before 0023 a search id was max + 1 at insert: codes added in descending order got descending ids.
    After it, ids follow code order and searches still answer exactly (SQLite; PostgreSQL just upgrades)."""
    from node.storage.search_index import fts_document, indexed_version

    command.upgrade(alembic_config(database_url), "0020")
    engine = make_engine(database_url)
    app = CatalogApplication(SqlUnitOfWorkFactory(engine), clock)
    metas = [entry(f"低保{i}", "摘要", "项", "词") for i in range(5)]
    app.import_resources(SYSTEM, metas)
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
