"""Catalog benchmark (``exnode bench catalog``): import N generated resources, then time typical searches.

Why: the catalog must stay usable at the size of a national civil-affairs catalog (around 10^5
resources) on both supported databases; this measures import throughput and search/get latency through
the same use cases the gRPC servicer calls. Output is ``name=value`` lines on stdout only (progress goes
to stderr), so runs can be compared by scripts.

The resources are variations of the sample catalog (node/sample/catalog.json): the same topics, items,
providers and conditions, with region-prefixed names, new codes and varied share/open/update attributes.
Generation uses a fixed seed, so every run imports the same catalog.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import resource
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psycopg
from sqlalchemy.engine import Engine

from catalog.interchange import metadata_from_dict
from catalog.model import (
    Classification,
    OpenType,
    ResourceMetadata,
    ResourceStatus,
    ShareMethodClass,
    ShareMethodType,
    ShareType,
    UpdateCycle,
)
from node.bench import progress
from node.services.catalog import CatalogApplication, SearchOrder
from node.storage.catalog_repository import ResourceFilter
from node.storage.database import make_engine, migrate, normalise_url
from node.storage.unit_of_work import SqlUnitOfWorkFactory
from security.identity import Principal

SAMPLE = Path(__file__).resolve().parents[1] / "sample" / "catalog.json"
POSTGRES_ADMIN = os.environ.get("EXNODE_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
"""Admin connection used to create (and drop) the run's own PostgreSQL database."""
SEED = 20260302
CHUNK = 5_000
"""Entries per import call (well under MAX_IMPORT, the size of a large provincial catalog file)."""
PUBLISH_EVERY = 5
"""Four chunks in five are imported with publish=True; the fifth stays draft, so status filters matter."""
QUERIES = 200
"""Timed queries per search kind (after a short warm-up that is not counted)."""
GETS = 1_000
WARMUP = 5
PAGE_SIZE = 50
IMPORTER = Principal.system("bench")
"""Imports run as the node itself: one chunk mixes many provider departments, as a national catalog file does."""
READER = Principal(subject="bench-reader", department_code="11150100011627354Q", roles=frozenset({"consumer"}))
"""Searches and gets run as an ordinary consumer (呼和浩特市民政局, itself a provider in the sample): it sees
every published resource and only its own department's drafts, the filter the gRPC servicer applies."""

REGIONS = (
    "北京市", "天津市", "河北省", "山西省", "内蒙古自治区", "辽宁省", "吉林省", "黑龙江省", "上海市", "江苏省",
    "浙江省", "安徽省", "福建省", "江西省", "山东省", "河南省", "湖北省", "湖南省", "广东省", "广西壮族自治区",
    "海南省", "重庆市", "四川省", "贵州省", "云南省", "西藏自治区", "陕西省", "甘肃省", "青海省",
    "宁夏回族自治区", "新疆维吾尔自治区", "呼和浩特市", "包头市", "鄂尔多斯市", "赤峰市", "通辽市", "石家庄市",
    "太原市", "沈阳市", "长春市", "哈尔滨市", "南京市", "杭州市", "合肥市", "福州市", "南昌市", "济南市",
    "郑州市", "武汉市", "长沙市", "广州市", "南宁市", "海口市", "成都市", "贵阳市", "昆明市", "拉萨市",
    "西安市", "兰州市", "西宁市", "银川市", "乌鲁木齐市",
)
YEARS = tuple(range(2018, 2026))
CYCLE_WEIGHTS = {
    UpdateCycle.REALTIME: 8, UpdateCycle.DAILY: 20, UpdateCycle.WEEKLY: 6, UpdateCycle.TEN_DAYS: 2,
    UpdateCycle.MONTHLY: 30, UpdateCycle.QUARTERLY: 12, UpdateCycle.HALF_YEARLY: 6, UpdateCycle.YEARLY: 12,
    UpdateCycle.OTHER: 4,
}
DEFAULT_SHARE_CONDITION = "仅用于依法履职，需经共享平台申请并经提供部门审核同意"
DEFAULT_OPEN_CONDITION = "经提供部门审核同意后向申请单位开放，不得公开个人隐私信息"

# Search workload. Common words hit thousands of resources; rare ones few or none, so the database
# must scan everything to fill (or fail to fill) a page.
TEXT_QUERIES = ("低保", "婚姻", "养老机构", "殡葬", "社会组织", "救助 金额", "公民身份号码", "志愿")
RARE_QUERIES = ("区块链", "海域使用", "不动产登记", "气象预警")
PAGING_QUERIES = ("救助", "登记", "补贴")


@dataclasses.dataclass
class Generator:
    """Deterministic source of valid resource metadata, varied from the sample catalog's entries."""

    seed: int = SEED
    rng: random.Random = dataclasses.field(init=False)
    templates: list[ResourceMetadata] = dataclasses.field(init=False)
    share_conditions: list[str] = dataclasses.field(init=False)
    open_conditions: list[str] = dataclasses.field(init=False)
    sequences: dict[str, int] = dataclasses.field(init=False)
    cycles: list[UpdateCycle] = dataclasses.field(init=False)
    cycle_weights: list[int] = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        raw = json.loads(SAMPLE.read_text(encoding="utf-8"))["resources"]
        self.templates = [metadata_from_dict(entry) for entry in raw]
        self.share_conditions = sorted({t.share_condition for t in self.templates if t.share_condition})
        self.open_conditions = sorted({t.open_condition for t in self.templates if t.open_condition})
        # New sequence numbers start above the sample's, per classification front code.
        self.sequences = {t.code.split("/")[0]: 1000 for t in self.templates}
        self.cycles = list(CYCLE_WEIGHTS)
        self.cycle_weights = list(CYCLE_WEIGHTS.values())

    def providers(self) -> list[str]:
        return sorted({t.provider_code for t in self.templates})

    def one(self, related_pool: list[str]) -> ResourceMetadata:
        rng = self.rng
        base = rng.choice(self.templates)
        front = base.code.split("/")[0]
        self.sequences[front] += 1
        code = f"{front}/{self.sequences[front]:06d}"
        region = rng.choice(REGIONS) if rng.random() < 0.8 else ""
        name = region + base.name
        if rng.random() < 0.3:
            name += f"（{rng.choice(YEARS)}年度）"
        keep = rng.randint(min(len(base.items), 3), len(base.items))
        items = tuple(sorted(rng.sample(base.items, keep), key=base.items.index))
        share_type = base.share_type if rng.random() < 0.6 else rng.choices(list(ShareType), (45, 45, 10))[0]
        if share_type is ShareType.NOT_SHARED:
            open_type = OpenType.NOT_OPEN
        else:
            open_type = base.open_type if rng.random() < 0.6 else rng.choices(list(OpenType), (30, 20, 50))[0]
            if open_type.number < share_type.number:  # opening to the public never exceeds sharing
                open_type = OpenType.CONDITIONAL
        share_condition = ""
        if share_type is not ShareType.UNCONDITIONAL:
            share_condition = base.share_condition or rng.choice(self.share_conditions or [DEFAULT_SHARE_CONDITION])
        method_class = method_type = None
        if share_type is not ShareType.NOT_SHARED:
            method_class = base.share_method_class or ShareMethodClass.PLATFORM
            method_type = base.share_method_type or ShareMethodType.INTERFACE
        open_condition = ""
        if open_type is OpenType.CONDITIONAL:
            open_condition = base.open_condition or rng.choice(self.open_conditions or [DEFAULT_OPEN_CONDITION])
        keywords = base.keywords + ((region,) if region and rng.random() < 0.5 else ())
        related = (rng.choice(related_pool),) if related_pool and rng.random() < 0.1 else ()
        return dataclasses.replace(
            base, code=code, name=name, items=items, share_type=share_type, open_type=open_type,
            update_cycle=rng.choices(self.cycles, self.cycle_weights)[0], share_condition=share_condition,
            share_method_class=method_class, share_method_type=method_type, open_condition=open_condition,
            publish_date=None, related_codes=related, keywords=keywords,
        )


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1): a value that was actually observed."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


def _emit(name: str, value: float | int | str) -> None:
    if isinstance(value, float):
        value = f"{value:.3f}"
    print(f"{name}={value}", flush=True)


def _progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


@contextmanager
def _postgres_database() -> Iterator[str]:
    """A database of its own for the run, dropped afterwards (also when the run fails)."""
    name = f"exnode_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES_ADMIN.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _import(app: CatalogApplication, count: int) -> tuple[list[str], list[str], float, float]:
    """Import ``count`` resources in CHUNK-sized atomic calls; only the import calls are timed. Returns
    every code, the published codes (any reader may get them), the seconds spent importing and this
    process's CPU seconds in them (on a loaded machine the CPU a resource costs is steadier than the
    wall rate; on SQLite it includes the database's work, on PostgreSQL only the client's)."""
    generator = Generator()
    codes: list[str] = []
    published: list[str] = []
    elapsed = cpu = 0.0
    for chunk_index, start in enumerate(range(0, count, CHUNK)):
        entries = [generator.one(codes) for _ in range(min(CHUNK, count - start))]
        publish = chunk_index % PUBLISH_EVERY != PUBLISH_EVERY - 1
        began, began_cpu = time.perf_counter(), time.process_time()
        app.import_resources(IMPORTER, entries, publish=publish)
        elapsed += time.perf_counter() - began
        cpu += time.process_time() - began_cpu
        codes.extend(e.code for e in entries)
        if publish:
            published.extend(e.code for e in entries)
        _progress(f"imported {len(codes)}/{count} ({len(codes) / elapsed:.0f}/s)")
        progress.step("bench catalog: importing resources", len(codes), count)
    return codes, published, elapsed, cpu


def _search_kinds(app: CatalogApplication, providers: list[str]) -> dict[str, Callable[[int], list[float]]]:
    """Each kind runs query ``i`` of its rotation and returns the latency of every request it made."""
    classifications = list(Classification)
    share_types = list(ShareType)
    statuses = (ResourceStatus.PUBLISHED, ResourceStatus.DRAFT)

    def one(flt: ResourceFilter, order: SearchOrder = SearchOrder.CODE) -> list[float]:
        began = time.perf_counter()
        app.list(READER, flt, page_size=PAGE_SIZE, order=order)
        return [time.perf_counter() - began]

    def paging(i: int) -> list[float]:
        """A user paging on: first page, then two more with the page token (each request timed)."""
        flt = ResourceFilter(query=PAGING_QUERIES[i % len(PAGING_QUERIES)])
        token, out = "", []
        for _ in range(3):
            began = time.perf_counter()
            page = app.list(READER, flt, page_size=PAGE_SIZE, page_token=token)
            out.append(time.perf_counter() - began)
            token = page.next_page_token
            if not token:
                break
        return out

    return {
        "text": lambda i: one(ResourceFilter(query=TEXT_QUERIES[i % len(TEXT_QUERIES)])),
        "text_rare": lambda i: one(ResourceFilter(query=RARE_QUERIES[i % len(RARE_QUERIES)])),
        "text_relevance": lambda i: one(ResourceFilter(query=TEXT_QUERIES[i % len(TEXT_QUERIES)]), SearchOrder.RELEVANCE),
        "provider": lambda i: one(ResourceFilter(provider_code=providers[i % len(providers)])),
        "share_type": lambda i: one(ResourceFilter(share_type=share_types[i % len(share_types)])),
        "classification_status": lambda i: one(ResourceFilter(
            classification=classifications[i % len(classifications)],
            status=statuses[(i // len(classifications)) % len(statuses)])),
        "paging": paging,
    }


def _analyze(engine: Engine) -> None:
    """PostgreSQL plans by table statistics, which autovacuum gathers within about a minute of a bulk
    import; gather them now so searches are timed with the plans a running node gets (and not with the
    defaults of a never-analysed table, or not at all where autovacuum is off). SQLite is left as the
    node leaves it: the node never runs ANALYZE there."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE resources, resource_versions, catalog_events, catalog_search")
            connection.commit()


class RawIndex:
    """The limit a search is compared with: a bare SQLite FTS5 index over the character bigrams (and
    single characters) of the same generated entries' search text, answering one page (the first
    PAGE_SIZE rowids) of a query's words. No visibility, no filters, no sort, no count, no documents:
    what the database alone costs."""

    def __init__(self, directory: Path, count: int) -> None:
        self.connection = sqlite3.connect(directory / "raw-index.db")
        self.connection.execute("CREATE VIRTUAL TABLE raw USING fts5(terms, content='', detail=none, tokenize='ascii')")
        generator = Generator()
        codes: list[str] = []
        with self.connection:
            for start in range(0, count, CHUNK):
                entries = [generator.one(codes) for _ in range(min(CHUNK, count - start))]
                codes.extend(e.code for e in entries)
                self.connection.executemany("INSERT INTO raw (rowid, terms) VALUES (?, ?)", [
                    (start + i + 1, " ".join(_raw_words(e.search_text()))) for i, e in enumerate(entries)])
                progress.step("bench catalog: the raw FTS5 index", len(codes), count)

    def page(self, query: str) -> float:
        expression = " AND ".join(f'"{w}"' for word in query.lower().split() for w in _raw_words(word, whole=True))
        began = time.perf_counter()
        self.connection.execute("SELECT rowid FROM raw WHERE raw MATCH ? LIMIT ?", (expression, PAGE_SIZE)).fetchall()
        return time.perf_counter() - began

    def p99(self) -> float:
        queries = [*TEXT_QUERIES, *RARE_QUERIES, *PAGING_QUERIES]
        for query in queries[:WARMUP]:
            self.page(query)
        return percentile([self.page(queries[i % len(queries)]) for i in range(QUERIES * 2)], 0.99)


def _raw_words(text: str, whole: bool = False) -> list[str]:
    """Hex words of the single characters and bigrams of a text; of a query word (``whole``), its
    bigrams (or its one character): one FTS5 token each."""
    out: list[str] = []
    for run in text.split():
        if len(run) == 1 or not whole:
            out.extend(character.encode().hex() for character in run)
        out.extend(run[i:i + 2].encode().hex() for i in range(len(run) - 1))
    return out


def _run_backend(url: str, prefix: str, count: int, raw: RawIndex | None = None, import_only: bool = False) -> None:
    _emit("backend", prefix)
    migrate(url)
    engine = make_engine(url)
    try:
        app = CatalogApplication(SqlUnitOfWorkFactory(engine))
        _codes, published, elapsed, cpu = _import(app, count)
        _emit(f"{prefix}_catalog_import_seconds", elapsed)
        _emit(f"{prefix}_catalog_import_resources_per_s", count / elapsed)
        _emit(f"{prefix}_catalog_import_cpu_us_per_resource", cpu / count * 1e6)
        if import_only:
            return
        _analyze(engine)

        overall: list[float] = []
        for kind, run in _search_kinds(app, Generator().providers()).items():
            for i in range(WARMUP):
                run(i)
            latencies: list[float] = []
            i = 0
            while len(latencies) < QUERIES:
                latencies.extend(run(i))
                i += 1
            overall.extend(latencies)
            _emit(f"{prefix}_search_{kind}_p50_ms", percentile(latencies, 0.50) * 1000)
            _emit(f"{prefix}_search_{kind}_p99_ms", percentile(latencies, 0.99) * 1000)
            _progress(f"{kind}: {len(latencies)} requests")
        _emit(f"{prefix}_search_p50_ms", percentile(overall, 0.50) * 1000)
        _emit(f"{prefix}_search_p99_ms", percentile(overall, 0.99) * 1000)
        if raw is not None:
            raw_p99 = raw.p99()
            _emit(f"{prefix}_raw_index_p99_ms", raw_p99 * 1000)
            _emit(f"{prefix}_search_vs_raw_index_p99_ratio", percentile(overall, 0.99) / raw_p99)

        rng = random.Random(SEED)
        gets: list[float] = []
        for _ in range(GETS):
            code = rng.choice(published)
            began = time.perf_counter()
            app.get(READER, code)
            gets.append(time.perf_counter() - began)
        _emit(f"{prefix}_get_p50_ms", percentile(gets, 0.50) * 1000)
        _emit(f"{prefix}_get_p99_ms", percentile(gets, 0.99) * 1000)
    finally:
        engine.dispose()


def main(count: int = 100_000, urls: list[str] | None = None, import_only: bool = False) -> int:
    """Run the benchmark on each database URL (default: a temporary SQLite file and a throw-away
    PostgreSQL database on the local server, both removed afterwards). Given URLs should name empty
    databases: the generated codes would collide with an earlier run's."""
    if count < 1:
        raise ValueError("count must be at least 1")
    with ExitStack() as stack:
        if urls is None:
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="exnode-bench-"))
            urls = [f"sqlite:///{Path(directory) / 'bench.db'}", stack.enter_context(_postgres_database())]
        raw = None
        if not import_only:
            raw_directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="exnode-bench-raw-")))
            _progress("building the raw FTS5 index of the same entries")
            raw = RawIndex(raw_directory, count)
        used: set[str] = set()
        for url in urls:
            prefix = normalise_url(url).get_backend_name()
            if prefix in used:
                prefix = f"{prefix}{len(used) + 1}"
            used.add(prefix)
            _progress(f"{prefix}: {normalise_url(url).render_as_string(hide_password=True)}")
            _run_backend(url, prefix, count, raw, import_only)
    _emit("peak_rss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    _emit("resources", count)
    return 0
