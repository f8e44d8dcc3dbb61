"""Catalog use cases over the real databases: every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from catalog.errors import AlreadyExists, Conflict, IllegalTransition, InvalidBatch, InvalidField, NotFound
from catalog.model import OpenType, ResourceStatus, ShareType, UpdateCycle, VersionState
from node.services.catalog import CatalogApplication
from node.storage.catalog_repository import ResourceFilter
from node.storage.database import make_engine, migrate
from node.storage.tables import catalog_events, resource_versions, resources
from node.storage.unit_of_work import SqlUnitOfWorkFactory
from security.identity import Principal
from tests.conftest import OTHER_PROVIDER, FixedClock, resource


@pytest.fixture
def app(database_url: str, clock: FixedClock) -> Iterator[CatalogApplication]:
    migrate(database_url)
    engine = make_engine(database_url)
    yield AsCaller(CatalogApplication(SqlUnitOfWorkFactory(engine), clock), Principal.system("test"))
    engine.dispose()


class AsCaller:
    """The application with the caller bound: these tests are about storage, not access."""

    def __init__(self, app: CatalogApplication, principal: Principal) -> None:
        self.app = app
        self.principal = principal
        self.uow = app.uow

    def __getattr__(self, name: str):
        method = getattr(self.app, name)
        if name in ("counts",):
            return method
        return functools.partial(method, self.principal)


def row_counts(app: CatalogApplication) -> tuple[int, int, int]:
    with app.uow() as uow:
        return tuple(uow.connection.execute(select(func.count()).select_from(t)).scalar_one()
                     for t in (resources, resource_versions, catalog_events))  # type: ignore[return-value]


def test_migrations_are_idempotent(database_url: str):
    migrate(database_url)
    migrate(database_url)


def test_created_resource_reads_back_identically(app: CatalogApplication):
    meta = resource(keywords=("低保",))
    app.create(meta)
    stored, version = app.get(meta.code)
    assert version.metadata == meta and stored.status is ResourceStatus.DRAFT


def test_duplicate_code_is_already_exists_and_changes_nothing(app: CatalogApplication):
    app.create(resource())
    before = row_counts(app)
    with pytest.raises(AlreadyExists, match="311140001/000101"):
        app.create(resource(name="另一个"))
    assert row_counts(app) == before


def test_unknown_related_code_is_refused_and_nothing_stored(app: CatalogApplication):
    with pytest.raises(InvalidField, match=r"related_codes\[0\]"):
        app.create(resource(related_codes=("311140001/999999",)))
    assert row_counts(app) == (0, 0, 0)


def test_published_version_is_kept_when_a_new_draft_is_edited(app: CatalogApplication, clock: FixedClock):
    app.create(resource())
    app.publish("311140001/000101")
    clock.advance(days=1)
    app.update(resource(name="城乡低保对象信息（修订）"))
    app.update(resource(name="城乡低保对象信息（再修订）"))
    history = app.history("311140001/000101")
    assert [(v.version, v.state) for v in history] == [(1, VersionState.PUBLISHED), (2, VersionState.DRAFT)]
    assert history[0].metadata.name == "城乡最低生活保障对象信息"
    _, first = app.get("311140001/000101", version=1)
    assert first.metadata.publish_date is not None
    app.publish("311140001/000101")
    stored, latest = app.get("311140001/000101")
    assert (stored.published_version, latest.metadata.name) == (2, "城乡低保对象信息（再修订）")


def test_publishing_a_retired_resource_is_a_failed_precondition(app: CatalogApplication):
    app.create(resource())
    app.publish("311140001/000101")
    app.retire("311140001/000101")
    before = row_counts(app)
    with pytest.raises(IllegalTransition, match="RETIRED"):
        app.publish("311140001/000101")
    with pytest.raises(IllegalTransition, match="RETIRED"):
        app.update(resource(name="x"))
    assert row_counts(app) == before


def test_expected_version_mismatch_is_a_conflict(app: CatalogApplication):
    app.create(resource())
    app.publish("311140001/000101")
    app.update(resource(name="v2"))
    with pytest.raises(Conflict, match="version 2"):
        app.update(resource(name="v2 again"), expected_version=1)


def test_unknown_resource_and_version_are_not_found(app: CatalogApplication):
    with pytest.raises(NotFound):
        app.get("311140001/000404")
    app.create(resource())
    with pytest.raises(NotFound, match="version 7"):
        app.get("311140001/000101", version=7)


def test_every_change_is_a_catalog_event(app: CatalogApplication):
    app.create(resource())
    app.update(resource(name="改"))
    app.publish("311140001/000101")
    app.retire("311140001/000101")
    with app.uow() as uow:
        kinds = [row.kind for row in uow.catalog.events_since(0, 100)]
    assert kinds == ["CREATED", "UPDATED", "PUBLISHED", "RETIRED"]


def _seed(app: CatalogApplication) -> None:
    entries = [
        resource("311140001/000001"),
        resource("311140001/000002", name="特困人员救助供养信息", share_type=ShareType.UNCONDITIONAL,
                 share_condition="", update_cycle=UpdateCycle.QUARTERLY),
        resource("311140001/000003", name="临时救助对象信息", provider_code=OTHER_PROVIDER,
                 provider_name="呼和浩特市民政局"),
        resource("311140001/000004", name="婚姻登记信息", summary="结婚登记与离婚登记办理结果",
                 share_type=ShareType.NOT_SHARED, share_condition="涉及个人隐私，依法不予共享"),
        resource("311140001/000005", name="养老机构名录", open_type=OpenType.UNCONDITIONAL,
                 share_type=ShareType.UNCONDITIONAL, share_condition=""),
    ]
    app.import_resources(entries, publish=True)
    app.create(resource("311140001/000006", name="低保资金发放草稿"))


def codes(page) -> list[str]:
    return [r.code for r in page.resources]


def test_list_filters(app: CatalogApplication):
    _seed(app)
    assert codes(app.list(ResourceFilter(share_type=ShareType.UNCONDITIONAL))) == [
        "311140001/000002", "311140001/000005"]
    assert codes(app.list(ResourceFilter(provider_code=OTHER_PROVIDER))) == ["311140001/000003"]
    assert codes(app.list(ResourceFilter(status=ResourceStatus.DRAFT))) == ["311140001/000006"]
    assert codes(app.list(ResourceFilter(update_cycle=UpdateCycle.QUARTERLY))) == ["311140001/000002"]
    assert codes(app.list(ResourceFilter(open_type=OpenType.UNCONDITIONAL))) == ["311140001/000005"]
    assert app.list(ResourceFilter()).total_size == 6


def test_chinese_text_search_matches_name_summary_and_item_names(app: CatalogApplication):
    _seed(app)
    assert codes(app.list(ResourceFilter(query="临时救助"))) == ["311140001/000003"]
    assert codes(app.list(ResourceFilter(query="供养 特困"))) == ["311140001/000002"]
    assert codes(app.list(ResourceFilter(query="离婚"))) == ["311140001/000004"]  # in the summary
    assert codes(app.list(ResourceFilter(query="保障金额 资金发放"))) == ["311140001/000006"]  # item + name
    assert codes(app.list(ResourceFilter(query="100%_"))) == []  # LIKE wildcards are literal


def test_pagination_walks_every_resource_once(app: CatalogApplication):
    _seed(app)
    seen, token = [], ""
    while True:
        page = app.list(ResourceFilter(), page_size=2, page_token=token)
        seen += codes(page)
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(seen) and len(seen) == 6


def test_page_token_is_bound_to_its_filters(app: CatalogApplication):
    _seed(app)
    token = app.list(ResourceFilter(), page_size=2).next_page_token
    with pytest.raises(InvalidField, match="page_token"):
        app.list(ResourceFilter(query="救助"), page_size=2, page_token=token)
    with pytest.raises(InvalidField, match="page_token"):
        app.list(ResourceFilter(), page_token="not-a-token")
    with pytest.raises(InvalidField, match="page_size"):
        app.list(ResourceFilter(), page_size=10_000)


def test_import_is_atomic_and_lists_every_bad_entry(app: CatalogApplication):
    app.create(resource("311140001/000009"))
    before = row_counts(app)
    entries = [
        resource("311140001/000001"),
        resource("311140001/000002", provider_code="11100000MB01284765"),
        resource("311140001/000003"),
        resource("311140001/000009"),
        resource("311140001/000004", related_codes=("311140001/888888",)),
        resource("311140001/000001"),
    ]
    with pytest.raises(InvalidBatch) as caught:
        app.import_resources(entries, publish=True)
    assert [e.index for e in caught.value.entries] == [1, 3, 4, 5]
    assert row_counts(app) == before


def test_import_may_relate_to_entries_of_the_same_file(app: CatalogApplication):
    result = app.import_resources([
        resource("311140001/000002", related_codes=("311140001/000001",)),
        resource("311140001/000001"),
    ], publish=True)
    assert (result.created, result.published) == (2, 2)


def test_concurrent_publishers_exactly_one_wins(app: CatalogApplication):
    app.create(resource())
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def publish() -> None:
        barrier.wait()
        try:
            app.publish("311140001/000101")
            outcomes.append("ok")
        except IllegalTransition:
            outcomes.append("refused")

    threads = [threading.Thread(target=publish) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["ok", "refused", "refused", "refused"]
    assert [v.version for v in app.history("311140001/000101")] == [1]
