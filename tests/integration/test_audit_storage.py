"""The audit trail on the real databases (SQLite and PostgreSQL): the group-commit writer, checkpoints,
retention, queries, and tampering done directly in SQL, the way someone with database access would."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine

from catalog.errors import InvalidField
from node.services.audit import AuditApplication, AuditSettings, AuditWriter, PurgeResult, verify_export
from node.storage.audit_repository import AuditFilter, AuditRepository
from node.storage.database import make_engine, migrate
from node.storage.tables import audit_checkpoints, audit_entries, audit_head
from node.storage.unit_of_work import SqlUnitOfWorkFactory, UnitOfWorkFactory
from security.audit import AuditEntry, AuditRecord, Checkpoint, VerifyResult, chain
from security.keys import KeyStore
from tests.conftest import OTHER_PROVIDER, PROVIDER, FixedClock

NODE = "node-mca-01"
EVERY = 5


@dataclasses.dataclass
class Trail:
    engine: Engine
    uow: UnitOfWorkFactory
    keys: KeyStore
    clock: FixedClock
    settings: AuditSettings
    writer: AuditWriter
    app: AuditApplication

    def writer_with(self, **settings: object) -> AuditWriter:
        self.settings = dataclasses.replace(self.settings, **settings)
        self.writer = AuditWriter(self.uow, self.keys.active, self.settings, self.clock)
        self.app = AuditApplication(self.uow, self.keys.public, self.settings, self.clock)
        return self.writer

    def sql(self, *statements: object) -> None:
        """Tampering: plain statements in a transaction of their own, past the application."""
        with self.engine.begin() as connection:
            for statement in statements:
                connection.execute(statement)  # type: ignore[call-overload]

    def read(self, how: Callable[[AuditRepository], object]) -> object:
        with self.uow() as uow:
            return how(AuditRepository(uow.connection))

    def entries(self) -> list[AuditEntry]:
        return self.read(lambda repo: list(repo.entries()))  # type: ignore[return-value]

    def checkpoints(self) -> list[Checkpoint]:
        return self.read(lambda repo: repo.checkpoints())  # type: ignore[return-value]

    def entry(self, sequence: int) -> AuditEntry:
        return next(e for e in self.entries() if e.sequence == sequence)

    def verify(self) -> VerifyResult:
        return self.app.verify()


@pytest.fixture
def trail(database_url: str, tmp_path: Path, clock: FixedClock) -> Iterator[Trail]:
    migrate(database_url)
    engine = make_engine(database_url)
    uow = SqlUnitOfWorkFactory(engine)
    keys = KeyStore.create(tmp_path / "keys")
    settings = AuditSettings(node_id=NODE, checkpoint_every=EVERY, checkpoint_interval_s=3600.0)
    made = Trail(engine, uow, keys, clock, settings, AuditWriter(uow, keys.active, settings, clock),
                 AuditApplication(uow, keys.public, settings, clock))
    yield made
    made.writer.stop()
    engine.dispose()


def record(n: int, at: dt.datetime, **changes: object) -> AuditRecord:
    fields: dict[str, object] = dict(
        at=at, request_id=f"req-{n:04d}", subject=f"user-{n % 3}",
        department_code=PROVIDER if n % 2 else OTHER_PROVIDER, roles=("catalog_admin", "provider"),
        action="CatalogService/ListResources" if n % 4 == 0 else "CatalogService/GetResource",
        target=f"resource:311140001/{n:06d}", result="PERMISSION_DENIED" if n % 5 == 0 else "OK",
        peer="ipv4:127.0.0.1:40000", detail=f"第{n}条：城乡低保对象信息查询")
    fields.update(changes)
    return AuditRecord(**fields)  # type: ignore[arg-type]


def records(trail: Trail, first: int, last: int) -> list[AuditRecord]:
    return [record(n, trail.clock()) for n in range(first, last + 1)]


def assert_broken(result: VerifyResult, sequence: int, *words: str) -> None:
    assert not result.ok, "the tampering went unnoticed"
    assert result.first_broken_sequence == sequence, result.problem
    for word in words:
        assert word in result.problem, (word, result.problem)


# -- the writer ---------------------------------------------------------------------------------------

def test_concurrent_submissions_get_unique_consecutive_sequences_and_a_valid_chain(trail: Trail):
    writer = trail.writer
    writer.start()
    barrier = threading.Barrier(6)

    def submit_from_a_thread(first: int) -> list[int]:
        barrier.wait()
        futures = [writer.submit(record(n, trail.clock())) for n in range(first, min(first + 4, 24))]
        return [future.result(timeout=60) for future in futures]

    with ThreadPoolExecutor(max_workers=6) as pool:
        sequences = [s for part in pool.map(submit_from_a_thread, range(1, 24, 4)) for s in part]
    assert sorted(sequences) == list(range(1, 24))
    stored = trail.entries()
    assert [e.sequence for e in stored] == list(range(1, 24))
    assert sorted(e.record.request_id for e in stored) == [f"req-{n:04d}" for n in range(1, 24)]
    assert writer.entries == 23 and 1 <= writer.batches <= 23

    result = trail.verify()
    assert result.ok, result.problem
    assert result.entries_checked == 23
    # A checkpoint is written at the end of a batch once EVERY entries are pending (and for the very first
    # batch, as no checkpoint exists yet): positions depend on how the submissions were batched, but the
    # unsigned tail is always shorter than EVERY and checkpoints after the first are EVERY or more apart.
    checkpoints = trail.checkpoints()
    assert checkpoints and result.checkpoints_checked == len(checkpoints)
    assert result.unsigned_tail < EVERY
    sequences = [c.sequence for c in checkpoints]
    assert all(b - a >= EVERY for a, b in zip(sequences, sequences[1:], strict=False))
    hashes = {e.sequence: e.entry_hash for e in stored}
    assert all(c.entry_hash == hashes[c.sequence] and c.kid == trail.keys.active.kid for c in checkpoints)

    writer.stop()
    final = trail.verify()
    assert final.ok and final.unsigned_tail == 0 and final.last_sequence == 23
    assert trail.checkpoints()[-1].sequence == 23


def test_two_writers_on_one_database_append_in_turn(trail: Trail):
    """Replicas share the chain head; its row lock makes their batches follow one another."""
    other = AuditWriter(trail.uow, trail.keys.active, trail.settings, trail.clock)
    trail.writer.start()
    other.start()
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = list(pool.map(lambda n: (trail.writer if n % 2 else other).submit(record(n, trail.clock())),
                                    range(1, 41)))
            sequences = [future.result(timeout=60) for future in futures]
    finally:
        other.stop()
    assert sorted(sequences) == list(range(1, 41))
    result = trail.verify()
    assert result.ok and result.entries_checked == 40 and result.unsigned_tail == 0, result.problem


def test_the_writer_notices_an_append_made_beside_it_and_chains_after_it(trail: Trail):
    """The writer chains a batch from the head it last wrote without reading it; a pipeline transaction's
    entries (``append_in``), a replica's, or a tampered head row make it read the head again."""
    writer = trail.writer
    writer.start()
    try:
        assert writer.submit(record(1, trail.clock())).result(timeout=60) == 1
        with trail.uow(write=True) as uow:  # the exchange pipeline's own transaction
            writer.append_in(uow, [record(2, trail.clock()), record(3, trail.clock())])
            uow.commit()
        assert writer.submit(record(4, trail.clock())).result(timeout=60) == 4
        assert writer.submit(record(5, trail.clock())).result(timeout=60) == 5
    finally:
        writer.stop()
    result = trail.verify()
    assert result.ok and result.entries_checked == 5, result.problem
    assert [e.record.request_id for e in trail.entries()] == [f"req-{n:04d}" for n in range(1, 6)]


def test_submitting_to_a_stopped_writer_fails_the_future(trail: Trail):
    future = trail.writer.submit(record(1, trail.clock()))
    with pytest.raises(Exception, match="not running"):
        future.result(timeout=5)
    assert trail.entries() == []


def test_the_head_row_follows_the_chain(trail: Trail):
    trail.writer.append(records(trail, 1, 7))
    with trail.engine.connect() as connection:
        head = connection.execute(select(audit_head)).one()
    assert head.last_sequence == 7 and head.last_hash == trail.entry(7).entry_hash.hex()
    assert head.last_checkpoint_sequence == 7  # the first batch is always signed


def test_a_checkpoint_is_written_when_the_interval_has_passed(trail: Trail):
    writer = trail.writer_with(checkpoint_every=1000, checkpoint_interval_s=30.0)
    writer.append(records(trail, 1, 3))
    assert [c.sequence for c in trail.checkpoints()] == [3]  # the first batch: no checkpoint existed
    writer.append(records(trail, 4, 5))
    writer.checkpoint_if_due()
    assert [c.sequence for c in trail.checkpoints()] == [3]
    trail.clock.advance(seconds=29)
    writer.checkpoint_if_due()
    assert [c.sequence for c in trail.checkpoints()] == [3]
    trail.clock.advance(seconds=1)
    writer.checkpoint_if_due()
    checkpoints = trail.checkpoints()
    assert [c.sequence for c in checkpoints] == [3, 5] and checkpoints[-1].at == trail.clock()
    trail.clock.advance(hours=1)
    writer.checkpoint_if_due()  # nothing new to sign
    assert len(trail.checkpoints()) == 2
    assert trail.verify().ok and trail.verify().unsigned_tail == 0


def test_the_running_writer_signs_an_idle_tail_once_the_interval_has_passed(trail: Trail):
    writer = trail.writer_with(checkpoint_every=1000, checkpoint_interval_s=0.2)
    writer.start()
    writer.submit(record(1, trail.clock())).result(timeout=60)
    writer.submit(record(2, trail.clock())).result(timeout=60)
    assert [c.sequence for c in trail.checkpoints()] == [1]
    trail.clock.advance(seconds=1)
    deadline = time.monotonic() + 60
    while [c.sequence for c in trail.checkpoints()] != [1, 2]:
        assert time.monotonic() < deadline, "the idle writer never checkpointed the tail"
        time.sleep(0.05)
    assert trail.verify().unsigned_tail == 0


# -- tampering in SQL ---------------------------------------------------------------------------------

@pytest.fixture
def sealed(trail: Trail) -> Trail:
    """23 entries appended in batches of 5 (checkpoints at 5, 10, 15, 20) and a final checkpoint at 23."""
    for first in range(1, 24, 5):
        trail.writer.append(records(trail, first, min(first + 4, 23)))
    trail.writer.checkpoint_if_due(force=True)
    assert [c.sequence for c in trail.checkpoints()] == [5, 10, 15, 20, 23]
    result = trail.verify()
    assert result.ok and result.entries_checked == 23 and result.checkpoints_checked == 5
    return trail


def _row(trail: Trail, sequence: int) -> dict:
    with trail.engine.connect() as connection:
        return dict(connection.execute(select(audit_entries).where(audit_entries.c.sequence == sequence))
                    .one()._mapping)


def _where(sequence: int):
    return audit_entries.c.sequence == sequence


def edit_detail(trail: Trail) -> tuple[int, list[str]]:
    trail.sql(update(audit_entries).where(_where(7)).values(detail="第7条：已被篡改"))
    return 7, ["entry 7 was altered"]


def edit_result(trail: Trail) -> tuple[int, list[str]]:
    trail.sql(update(audit_entries).where(_where(10)).values(result="OK"))
    return 10, ["entry 10 was altered"]


def edit_time(trail: Trail) -> tuple[int, list[str]]:
    trail.sql(update(audit_entries).where(_where(16)).values(at=trail.clock() - dt.timedelta(days=3)))
    return 16, ["entry 16 was altered"]


def delete_middle(trail: Trail) -> tuple[int, list[str]]:
    trail.sql(delete(audit_entries).where(_where(12)))
    return 12, ["entry 12 is missing", "after entry 11 comes 13"]


def delete_tail(trail: Trail) -> tuple[int, list[str]]:
    trail.sql(delete(audit_entries).where(audit_entries.c.sequence >= 22))
    return 22, ["checkpoint 23 signs entries up to 23", "ends at 21", "deleted from the end"]


def swap_rows(trail: Trail) -> tuple[int, list[str]]:
    eighth, ninth = _row(trail, 8), _row(trail, 9)
    contents = [c.name for c in audit_entries.columns if c.name != "sequence"]
    trail.sql(update(audit_entries).where(_where(8)).values({c: ninth[c] for c in contents}),
              update(audit_entries).where(_where(9)).values({c: eighth[c] for c in contents}))
    return 8, ["entry 8 does not link to entry 7", "reordered"]


def insert_made_up_hash(trail: Trail) -> tuple[int, list[str]]:
    row = _row(trail, 23) | {"sequence": 24, "previous_hash": _row(trail, 23)["entry_hash"],
                             "entry_hash": hashlib.sha256(b"made up").hexdigest(), "detail": "伪造"}
    trail.sql(insert(audit_entries).values(row))
    return 24, ["entry 24 was altered"]


def insert_unlinked(trail: Trail) -> tuple[int, list[str]]:
    forged = chain([record(99, trail.clock())], 23, hashlib.sha256(b"no such entry").digest())[0]
    with trail.engine.begin() as connection:
        AuditRepository(connection).append([forged])
    return 24, ["entry 24 does not link to entry 23"]


def insert_renumbered(trail: Trail) -> tuple[int, list[str]]:
    """A forged entry chained correctly onto entry 7, the genuine ones after it moved up by one."""
    forged = chain([record(99, trail.clock(), detail="伪造的查询记录")], 7, trail.entry(7).entry_hash)
    with trail.engine.begin() as connection:
        for sequence in range(23, 7, -1):
            connection.execute(update(audit_entries).where(_where(sequence)).values(sequence=sequence + 1))
        AuditRepository(connection).append(forged)
    return 9, ["entry 9 does not link to entry 8", "inserted"]


def consistent_rewrite(trail: Trail) -> tuple[int, list[str]]:
    """Edit entry 12 and recompute its hash and every later one: caught by checkpoint 15, which signed the
    old chain; the signed span 11..15 is what can be named."""
    entries = trail.entries()
    kept = entries[10]
    assert kept.sequence == 11
    rewritten = [e.record for e in entries[11:]]
    rewritten[0] = dataclasses.replace(rewritten[0], result="OK", detail="改写后的记录")
    new = chain(rewritten, kept.sequence, kept.entry_hash)
    trail.sql(*[update(audit_entries).where(_where(e.sequence)).values(
        result=e.record.result, detail=e.record.detail, previous_hash=e.previous_hash.hex(),
        entry_hash=e.entry_hash.hex()) for e in new])
    return 11, ["entries 11..15 were rewritten", "checkpoint 15"]


def rewrite_with_checkpoints_moved(trail: Trail) -> tuple[int, list[str]]:
    """The same rewrite, with the checkpoints' hashes updated too: the node's signatures no longer match."""
    consistent_rewrite(trail)
    rewritten = {e.sequence: e.entry_hash.hex() for e in trail.entries()}
    trail.sql(*[update(audit_checkpoints).where(audit_checkpoints.c.sequence == s).values(entry_hash=rewritten[s])
                for s in (15, 20, 23)])
    return 15, ["checkpoint 15", "signature does not verify"]


def forge_signature(trail: Trail) -> tuple[int, list[str]]:
    with trail.engine.connect() as connection:
        signature = connection.execute(select(audit_checkpoints.c.signature)
                                       .where(audit_checkpoints.c.sequence == 10)).scalar_one()
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    trail.sql(update(audit_checkpoints).where(audit_checkpoints.c.sequence == 10).values(signature=flipped))
    return 10, ["checkpoint 10", "signature does not verify"]


def foreign_kid(trail: Trail) -> tuple[int, list[str]]:
    trail.sql(update(audit_checkpoints).where(audit_checkpoints.c.sequence == 20).values(kid="0123456789abcdef"))
    return 20, ["checkpoint 20", "'0123456789abcdef'", "not a node key"]


def other_node(trail: Trail) -> tuple[int, list[str]]:
    trail.sql(update(audit_checkpoints).where(audit_checkpoints.c.sequence == 5).values(node_id="node-elsewhere"))
    return 5, ["checkpoint 5", "'node-elsewhere'"]


TAMPERING = [edit_detail, edit_result, edit_time, delete_middle, delete_tail, swap_rows, insert_made_up_hash,
             insert_unlinked, insert_renumbered, consistent_rewrite, rewrite_with_checkpoints_moved, forge_signature,
             foreign_kid, other_node]


@pytest.mark.parametrize("tamper", TAMPERING, ids=[t.__name__ for t in TAMPERING])
def test_tampering_in_sql_is_detected_and_named(sealed: Trail, tamper: Callable[[Trail], tuple[int, list[str]]]):
    sequence, words = tamper(sealed)
    assert_broken(sealed.verify(), sequence, *words)


def test_a_tampered_database_exports_a_file_that_fails_the_same_way(sealed: Trail):
    edit_detail(sealed)
    result = verify_export(list(sealed.app.export()), dict(sealed.keys.public))
    assert_broken(result, 7, "entry 7 was altered")


def test_an_untampered_export_verifies_with_the_published_keys(sealed: Trail):
    lines = list(sealed.app.export())
    assert len(lines) == 1 + 23 + 5
    result = verify_export(lines, dict(sealed.keys.public))
    assert result.ok and result.entries_checked == 23 and result.checkpoints_checked == 5


# -- retention ----------------------------------------------------------------------------------------

def test_retention_purge_keeps_a_verifiable_trail_anchored_at_a_checkpoint(trail: Trail):
    writer = trail.writer
    writer.append(records(trail, 1, 5))
    writer.append(records(trail, 6, 10))
    assert trail.app.purge() == PurgeResult(0, 0)  # nothing is old yet
    trail.clock.advance(days=200)
    writer.append(records(trail, 11, 15))
    writer.append(records(trail, 16, 18))
    assert [c.sequence for c in trail.checkpoints()] == [5, 10, 15]

    purged = trail.app.purge()
    assert purged.deleted == 10 and purged.anchor_sequence == 10
    assert [e.sequence for e in trail.entries()] == list(range(11, 19))
    assert [c.sequence for c in trail.checkpoints()] == [10, 15]
    result = trail.verify()
    assert result.ok, result.problem
    assert result.first_sequence == purged.anchor_sequence + 1 == 11
    assert (result.last_sequence, result.entries_checked, result.unsigned_tail) == (18, 8, 3)

    again = trail.app.purge()
    assert again.deleted == 0 and trail.verify().ok

    writer.append(records(trail, 19, 20))
    assert trail.verify().ok and trail.verify().last_sequence == 20

    trail.sql(delete(audit_checkpoints).where(audit_checkpoints.c.sequence == purged.anchor_sequence))
    assert_broken(trail.verify(), 11, "starts at entry 11", "no signed checkpoint anchors it")


def test_a_purged_trail_exports_a_file_that_verifies_on_its_own(trail: Trail):
    writer = trail.writer
    writer.append(records(trail, 1, 5))
    writer.append(records(trail, 6, 10))
    trail.clock.advance(days=200)
    writer.append(records(trail, 11, 15))
    assert trail.app.purge().anchor_sequence == 10
    lines = list(trail.app.export())
    assert '"type": "anchor"' in lines[1] and '"sequence": 10' in lines[1]
    result = verify_export(lines, dict(trail.keys.public))
    assert result.ok, result.problem
    assert result.first_sequence == 11 and result.entries_checked == 5


def test_purging_a_trail_older_than_the_retention_period_leaves_it_verifiable(trail: Trail):
    """Nothing was logged for longer than the retention period, and the node's last checkpoint signs the
    newest entry: the purge must still leave a trail that verifies."""
    trail.writer.append(records(trail, 1, 5))
    trail.writer.append(records(trail, 6, 10))
    trail.clock.advance(days=181)
    purged = trail.app.purge()
    result = trail.verify()
    assert result.ok, result.problem
    assert purged.deleted == 5 and result.first_sequence == 6
    trail.writer.append(records(trail, 11, 12))
    assert trail.verify().ok


# -- queries ------------------------------------------------------------------------------------------

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def queried(trail: Trail) -> tuple[Trail, list[AuditRecord]]:
    """23 entries one minute apart: entry n at T0 + n minutes."""
    written = [record(n, T0 + dt.timedelta(minutes=n)) for n in range(1, 24)]
    trail.writer.append(written)
    return trail, written


def _expected(written: list[AuditRecord], keep: Callable[[int, AuditRecord], bool]) -> list[int]:
    return [n for n in range(23, 0, -1) if keep(n, written[n - 1])]


FILTERS: list[tuple[AuditFilter, Callable[[int, AuditRecord], bool]]] = [
    (AuditFilter(), lambda n, r: True),
    (AuditFilter(subject="user-1"), lambda n, r: r.subject == "user-1"),
    (AuditFilter(department_code=OTHER_PROVIDER), lambda n, r: r.department_code == OTHER_PROVIDER),
    (AuditFilter(action="CatalogService/ListResources"), lambda n, r: r.action == "CatalogService/ListResources"),
    (AuditFilter(result="PERMISSION_DENIED"), lambda n, r: r.result == "PERMISSION_DENIED"),
    (AuditFilter(target="resource:311140001/000017"), lambda n, r: n == 17),
    (AuditFilter(since=T0 + dt.timedelta(minutes=5), until=T0 + dt.timedelta(minutes=10)),
     lambda n, r: 5 <= n < 10),
    (AuditFilter(since=T0 + dt.timedelta(minutes=20)), lambda n, r: n >= 20),
    (AuditFilter(until=T0 + dt.timedelta(minutes=3)), lambda n, r: n < 3),
    (AuditFilter(subject="user-2", department_code=PROVIDER, result="OK"),
     lambda n, r: r.subject == "user-2" and r.department_code == PROVIDER and r.result == "OK"),
    (AuditFilter(subject="nobody"), lambda n, r: False),
]


@pytest.mark.parametrize("flt, keep", FILTERS, ids=[repr(f) for f, _ in FILTERS])
def test_query_filters_newest_first(queried: tuple[Trail, list[AuditRecord]], flt: AuditFilter,
                                    keep: Callable[[int, AuditRecord], bool]):
    trail, written = queried
    page = trail.app.query(flt, page_size=100)
    assert [e.sequence for e in page.entries] == _expected(written, keep)
    assert page.next_page_token == ""
    for entry in page.entries:
        assert entry.record == dataclasses.replace(written[entry.sequence - 1],
                                                   roles=tuple(sorted(written[entry.sequence - 1].roles)))


@pytest.mark.parametrize("flt, page_size", [(AuditFilter(), 4), (AuditFilter(), 23), (AuditFilter(), 1),
                                            (AuditFilter(result="OK"), 6), (AuditFilter(subject="user-0"), 3)])
def test_pages_cover_every_match_once_newest_first(queried: tuple[Trail, list[AuditRecord]], flt: AuditFilter,
                                                   page_size: int):
    trail, written = queried
    seen: list[int] = []
    token, pages = "", 0
    while True:
        page = trail.app.query(flt, page_size=page_size, page_token=token)
        assert 0 < len(page.entries) <= page_size
        seen.extend(e.sequence for e in page.entries)
        pages += 1
        token = page.next_page_token
        if not token:
            break
    expected = [e.sequence for e in trail.app.query(flt, page_size=500).entries]
    assert seen == expected and len(set(seen)) == len(seen)
    assert pages == -(-len(expected) // page_size)


def test_entries_appended_between_pages_do_not_shift_the_pages(queried: tuple[Trail, list[AuditRecord]]):
    trail, _ = queried
    first = trail.app.query(AuditFilter(), page_size=10)
    trail.writer.append([record(24, T0 + dt.timedelta(minutes=24))])
    second = trail.app.query(AuditFilter(), page_size=10, page_token=first.next_page_token)
    assert [e.sequence for e in first.entries] == list(range(23, 13, -1))
    assert [e.sequence for e in second.entries] == list(range(13, 3, -1))


def test_a_page_token_is_refused_with_another_filter_or_when_made_up(queried: tuple[Trail, list[AuditRecord]]):
    trail, _ = queried
    token = trail.app.query(AuditFilter(result="OK"), page_size=2).next_page_token
    assert token
    for flt, bad in [(AuditFilter(result="PERMISSION_DENIED"), token), (AuditFilter(), token),
                     (AuditFilter(result="OK"), "not-a-token"), (AuditFilter(result="OK"), token[:-4])]:
        with pytest.raises(InvalidField) as raised:
            trail.app.query(flt, page_size=2, page_token=bad)
        assert raised.value.problems[0].field == "page_token"


def test_page_size_is_capped(queried: tuple[Trail, list[AuditRecord]]):
    trail, _ = queried
    assert len(trail.app.query(AuditFilter(), page_size=0).entries) == 23  # default 100
    assert len(trail.app.query(AuditFilter(), page_size=10_000).entries) == 23



# -- export ranges ------------------------------------------------------------------------------------

@pytest.fixture
def minutes(trail: Trail) -> Trail:
    """Entry n at T0 + n minutes, appended in batches of 5: checkpoints at 5, 10, 15, 20 and 23."""
    for first in range(1, 24, 5):
        trail.writer.append([record(n, T0 + dt.timedelta(minutes=n)) for n in range(first, min(first + 5, 24))])
    trail.writer.checkpoint_if_due(force=True)
    return trail


def test_an_export_range_is_widened_back_to_a_checkpoint_and_verifies_on_its_own(minutes: Trail):
    lines = list(minutes.app.export(T0 + dt.timedelta(minutes=12), T0 + dt.timedelta(minutes=17)))
    kinds = [(json.loads(line)["type"], json.loads(line).get("sequence")) for line in lines]
    assert kinds == [("header", None), ("anchor", 10), *[("entry", n) for n in range(11, 16)], ("checkpoint", 15),
                     ("entry", 16)]
    result = verify_export(lines, dict(minutes.keys.public))
    assert result.ok, result.problem
    assert (result.first_sequence, result.last_sequence, result.unsigned_tail) == (11, 16, 1)


def test_an_export_range_with_no_entries_holds_only_the_header(minutes: Trail):
    for since, until in [(T0 + dt.timedelta(days=1), None), (None, T0 - dt.timedelta(days=1))]:
        lines = list(minutes.app.export(since, until))
        assert [json.loads(line)["type"] for line in lines] == ["header"], (since, until)
        assert verify_export(lines, dict(minutes.keys.public)).ok


class _StopAfter:
    """A stop flag that reads as set from its ``calls``-th look on (a node told to stop mid-walk)."""

    def __init__(self, calls: int) -> None:
        self.calls, self.looked = calls, 0

    def is_set(self) -> bool:
        self.looked += 1
        return self.looked >= self.calls


def test_a_verification_told_to_stop_gives_up_within_a_chunk_of_entries(trail: Trail):
    """``exnode serve`` verifies the whole chain at start; a Ctrl-C must not wait for a million entries."""
    from node.services.audit import VerificationStopped

    trail.writer.append(records(trail, 1, 1600))
    assert trail.app.verify(threading.Event()).ok  # a flag never set changes nothing
    stop = _StopAfter(2)  # looked at entry 1, set by entry 501
    with pytest.raises(VerificationStopped):
        trail.app.verify(stop)  # type: ignore[arg-type]
    assert stop.looked == 2


def test_the_last_verification_is_kept_in_the_database_for_every_process_with_who_ran_it(trail: Trail):
    """Two processes of one node (two engines on one database): a verification one of them runs is the
    last verification the other shows, with who asked and how, and a broken chain is recorded as broken."""
    from security.identity import Principal

    trail.writer.append(records(trail, 1, 12))
    other_engine = make_engine(str(trail.engine.url.render_as_string(hide_password=False)))
    other = AuditApplication(SqlUnitOfWorkFactory(other_engine), trail.keys.public, trail.settings, trail.clock)
    try:
        assert other.last_verification() is None
        officer = Principal("officer-wang", PROVIDER, frozenset({"security_officer"}))
        started = trail.clock()
        assert trail.app.verify_recorded(officer, "console").ok
        last = other.last_verification()
        assert last is not None and last.result.ok and last.result.entries_checked == 12
        assert (last.subject, last.department_code, last.via) == ("officer-wang", PROVIDER, "console")
        assert last.started_at == started and last.finished_at >= last.started_at
        trail.sql(update(audit_entries).where(audit_entries.c.sequence == 7).values(detail="edited"))
        trail.clock.advance(minutes=5)
        assert not other.verify_recorded(Principal.system(NODE), "daily").ok
        last = trail.app.last_verification()
        assert last is not None and not last.result.ok and last.result.first_broken_sequence == 7
        assert (last.subject, last.via) == (f"system:{NODE}", "daily") and "entry 7" in last.result.problem
    finally:
        other_engine.dispose()


def test_a_stopped_verification_records_nothing(trail: Trail):
    from node.services.audit import VerificationStopped
    from security.identity import Principal

    trail.writer.append(records(trail, 1, 1200))
    with pytest.raises(VerificationStopped):
        trail.app.verify_recorded(Principal.system(NODE), "daily", _StopAfter(2))  # type: ignore[arg-type]
    assert trail.app.last_verification() is None
