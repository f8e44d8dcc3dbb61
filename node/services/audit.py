"""The audit trail's use cases: the group-commit writer, query, export, verify and retention.

Why a writer thread: one transaction per RPC would make the audit trail the node's bottleneck (SQLite
commits with synchronous=FULL cost an fsync each). Requests hand their entry to the writer and wait for
the batch it lands in to commit; the writer commits everything that queued up meanwhile in one
transaction. A request is answered only after its entry is durable, so no answered request can lack
its entry, and under load many requests share one commit.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import datetime as dt
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from catalog.errors import InvalidField
from node.services.errors import AuditUnavailable
from node.storage.audit_repository import AuditFilter, AuditRepository, Head, Verification
from node.storage.timestamp_repository import TimestampRepository
from node.storage.unit_of_work import UnitOfWork, UnitOfWorkFactory
from security import audit
from security.audit import AuditEntry, AuditRecord, VerifyResult
from security.identity import Principal
from security.keys import PublicKey, SigningKey
from security.timestamps import signed_digest

log = logging.getLogger(__name__)
Clock = Callable[[], dt.datetime]
MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 100


@dataclass(frozen=True)
class AuditSettings:
    node_id: str
    checkpoint_every: int = 1000
    checkpoint_interval_s: float = 60.0
    retention_days: int = 180
    max_batch: int = 2000
    batch_window_s: float = 0.0
    """After the first entry of a batch arrives, wait this long for more before committing, when the last batch
    carried more than one (callers are concurrent; a lone caller never waits). Why: each commit has a fixed
    cost in the writer (a transaction, the head's move, an fsync, waking the loops, winning the GIL back from
    the busy event loop at every driver call), so under load fewer, larger commits cost less CPU per entry: in
    ``exnode bench rpc``'s load (32 calls) the writer thread's CPU per entry was 158-226 µs without, 130-150 µs
    with 5 ms (entries per commit 5.5-7 → 10-11). Write tasks (quota takes) wait in the window too."""
    timestamps: bool = False
    """A TSA is configured: each signed checkpoint waits for its RFC 3161 timestamp (node/services/timestamps.py)."""


def _run_tasks(uow: UnitOfWork, tasks: Sequence[WriteTask]) -> list[Any]:
    """Each task's result, in order; those sharing a ``together`` run by one call of it."""
    results: list[Any] = [None] * len(tasks)
    groups: dict[Any, list[int]] = {}
    for index, task in enumerate(tasks):
        if task.together is None:
            results[index] = task.run(uow)
        else:
            groups.setdefault(task.together, []).append(index)
    for together, indexes in groups.items():
        for index, result in zip(indexes, together(uow, [tasks[i] for i in indexes]), strict=True):
            results[index] = result
    return results


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class WriteTask:
    """A write that rides in the writer's next transaction (the verification quota's take): it commits with
    the entries queued beside it, so both share one commit instead of each paying its own."""

    run: Callable[[UnitOfWork], Any]
    together: Callable[[UnitOfWork, Sequence[WriteTask]], list[Any]] | None = None
    """Tasks of one batch with the same ``together`` are run by one call of it (their results in order), so
    a batch's quota takes of one grant are one statement instead of one each."""
    payload: Any = None
    """What ``together`` needs of the task."""


class AuditWriter:
    """Appends entries in batches from one thread; ``submit`` returns a future done once committed.

    Nothing a caller does reaches the thread: a caller that stops waiting (a cancelled call, a deadline)
    leaves its entry queued, and it is committed like every other (the trail holds abandoned calls too);
    its future is settled only if still pending. The thread beats (``last_beat``) on every turn, at
    least once a second, so the node's liveness sees it dead or stuck (``node/ops/workers.py``)."""

    def __init__(self, uow: UnitOfWorkFactory, signer: SigningKey, settings: AuditSettings,
                 clock: Clock = _utc_now) -> None:
        self.uow = uow
        self.signer = signer
        """Signs the checkpoints (the node's active key)."""
        self.settings = settings
        self.clock = clock
        self._queue: queue.Queue[_Queued | list[_Queued] | None] = queue.Queue()
        self._buffered: dict[asyncio.AbstractEventLoop, list[_Queued]] = {}
        """Per event loop, what it submitted this turn (``submit_async``); touched only on that loop's thread."""
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches = 0
        self.entries = 0
        self.last_beat = time.monotonic()
        self._joining: list[AuditRecord] | None = None
        self._last_batch = 0
        self._head: Head | None = None
        """The head the writer thread last committed (None: read it): see ``_append_batch``."""

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self.last_beat = time.monotonic()
                self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
                self._thread.start()

    def running(self) -> bool:
        """The thread is alive (``last_beat`` tells whether it is stuck)."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def stop(self) -> None:
        """Write what is queued, checkpoint the tail, stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()
        self.checkpoint_if_due(force=True)

    def submit(self, record: AuditRecord) -> concurrent.futures.Future[int]:
        """The future's result is the entry's sequence number, set when its batch has committed."""
        future: concurrent.futures.Future[int] = concurrent.futures.Future()
        if not self.running():
            future.set_exception(AuditUnavailable("the audit writer is not running"))
            return future
        self._queue.put((record, future))
        return future

    def submit_async(self, record: AuditRecord) -> asyncio.Future[int]:
        """``submit`` for a caller on an event loop (the gRPC interceptor): the future is the loop's own, and
        the writer settles all of a batch's futures of one loop with one wake-up of that loop. The entries
        a loop submits in one turn reach the writer as one item at the end of that turn (``_hand_over``):
        one queue put and at most one wake-up of the writer per turn instead of one per entry, each of which
        took the GIL from the loop. The entry is buffered before anything can be awaited, so a caller that
        gives up at once still leaves it. Call it on the loop's thread."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        if not self.running():
            future.set_exception(AuditUnavailable("the audit writer is not running"))
            return future
        buffered = self._buffered.get(loop)
        if buffered is None:
            buffered = self._buffered[loop] = []
            loop.call_soon(self._hand_over, loop)
        buffered.append((record, _LoopFuture(loop, future)))
        return future

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        """Queue what ``loop`` submitted this turn, as one item (on the loop's thread)."""
        buffered = self._buffered.pop(loop, None)
        if not buffered:
            return
        if not self.running():
            failure = AuditUnavailable("the audit writer is not running")
            for _, waiter in buffered:
                if not waiter.future.done():
                    waiter.future.set_exception(failure)
            return
        self._queue.put(buffered)

    def submit_task(self, task: WriteTask) -> concurrent.futures.Future[tuple[Any, int]]:
        """Run ``task`` in the next batch's transaction: the future's result is (what it returned, the batch's
        number), set once that transaction has committed; the task's own error if it raised."""
        future: concurrent.futures.Future[tuple[Any, int]] = concurrent.futures.Future()
        if not self.running():
            future.set_exception(AuditUnavailable("the audit writer is not running"))
            return future
        self._queue.put((task, future))
        return future

    def submit_task_async(self, task: WriteTask) -> asyncio.Future[tuple[Any, int]]:
        """``submit_task`` for a caller on an event loop: the loop's own future, settled with the batch's
        audit entries in one wake-up of the loop (``submit_async``). Call it on the loop's thread."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[Any, int]] = loop.create_future()
        if not self.running():
            future.set_exception(AuditUnavailable("the audit writer is not running"))
            return future
        self._queue.put((task, _LoopFuture(loop, future)))
        return future

    def append(self, records: Sequence[AuditRecord]) -> list[AuditEntry]:
        """Append synchronously in one transaction (CLI maintenance, tests)."""
        return self._write(list(records), [])[0]

    def _run(self) -> None:
        try:
            self._loop()
        finally:  # the thread ends (stop, or killed): nobody may wait for it any longer
            self._fail_queued(AuditUnavailable("the audit writer stopped"))

    def _loop(self) -> None:
        checkpoint_every_s = max(0.05, self.settings.checkpoint_interval_s / 4)
        next_checkpoint = time.monotonic() + checkpoint_every_s
        while True:
            self.last_beat = time.monotonic()
            if self.last_beat >= next_checkpoint:
                self._safe_checkpoint()
                next_checkpoint = time.monotonic() + checkpoint_every_s
            try:
                item = self._queue.get(timeout=min(1.0, checkpoint_every_s))
            except queue.Empty:
                continue
            stop = item is None
            if not stop and self._last_batch > 1 and self.settings.batch_window_s > 0:
                time.sleep(self.settings.batch_window_s)  # callers are concurrent: let this commit carry more
            batch: list[_Queued] = []
            while item is not None:
                if isinstance(item, list):
                    batch.extend(item)
                else:
                    batch.append(item)
                if len(batch) >= self.settings.max_batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                stop = item is None
            self._last_batch = len(batch)
            if batch:
                self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[_Queued]) -> None:
        records = [(item, future) for item, future in batch if isinstance(item, AuditRecord)]
        tasks = [(item, future) for item, future in batch if isinstance(item, WriteTask)]
        try:
            entries, results = self._write([record for record, _ in records], [task for task, _ in tasks])
        except Exception as error:
            log.error("audit write failed: %s: %s", type(error).__name__, error)
            failure = AuditUnavailable(f"the audit trail could not be written: {error}")
            for _, future in records:
                _settle(future, error=failure)
            for _, future in tasks:  # the quota's caller sees the database's own error, as it did on its own
                _settle(future, error=error)
            _wake_loops()
            return
        for (_, future), entry in zip(records, entries, strict=True):
            _settle(future, result=entry.sequence)
        for (_, future), result in zip(tasks, results, strict=True):
            _settle(future, result=(result, self.batches))
        _wake_loops()

    def _fail_queued(self, failure: AuditUnavailable) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            items = [] if item is None else item if isinstance(item, list) else [item]
            for _, future in items:
                _settle(future, error=failure)
            _wake_loops()

    def _write(self, records: list[AuditRecord], tasks: list[WriteTask]) -> tuple[list[AuditEntry], list[Any]]:
        with self.uow(write=True) as uow:
            extra: list[AuditRecord] = []
            self._joining = extra
            try:
                results = _run_tasks(uow, tasks)
            finally:
                self._joining = None
            written = records + extra
            entries, head = self._append_batch(uow, written) if written else ([], None)
            try:
                uow.commit()
            except BaseException:
                self._head = None
                raise
        self._head = head
        self.batches += 1
        return entries[:len(records)], results

    def join_batch(self, uow: UnitOfWork, records: Sequence[AuditRecord]) -> None:
        """Entries a write task adds (a verification's, with its quota count): inside the writer's batch they
        join its one append of the chain; elsewhere (no writer) they are appended in ``uow`` now. Either
        way they commit with the task's writes."""
        joining = self._joining
        if joining is not None and threading.current_thread() is self._thread:
            joining.extend(records)
        else:
            self.append_in(uow, records)

    def _append_batch(self, uow: UnitOfWork, records: Sequence[AuditRecord]) -> tuple[list[AuditEntry], Head | None]:
        """``append_in`` from the head this thread last committed, moved only if the database still holds
        it (``set_head_if``); otherwise (another writer appended: a pipeline transaction, another process)
        as ``append_in`` does, from the locked head. The entries are inserted after the head moved, so a
        batch never holds entries chained from a stale head."""
        cached = self._head
        self._head = None
        if cached is not None:
            entries = audit.chain(records, cached.last_sequence, cached.last_hash)
            last = entries[-1]
            head = self._checkpoint_due(Head(last.sequence, last.entry_hash, cached.last_checkpoint_sequence,
                                             cached.last_checkpoint_at), force=False)
            if uow.audit.set_head_if(cached, head):
                uow.audit.append(entries)
                if head.last_checkpoint_sequence != cached.last_checkpoint_sequence:
                    self._add_checkpoint(uow.audit, head)
                self.entries += len(entries)
                return entries, head
        entries = self.append_in(uow, records)
        return entries, uow.audit.head()

    def append_in(self, uow: UnitOfWork, records: Sequence[AuditRecord]) -> list[AuditEntry]:
        """Append inside the caller's transaction: the exchange pipeline commits records, their audit
        entries and the outbox together, so none exists without the others."""
        repo = uow.audit
        head = repo.lock_head()
        entries = audit.chain(records, head.last_sequence, head.last_hash)
        repo.append(entries)
        last = entries[-1] if entries else None
        head = Head(last.sequence, last.entry_hash, head.last_checkpoint_sequence,
                    head.last_checkpoint_at) if last else head
        head = self._checkpoint_in(repo, head, force=False)
        repo.set_head(head)
        self.entries += len(entries)
        return entries

    def _checkpoint_in(self, repo: AuditRepository, head: Head, *, force: bool) -> Head:
        new = self._checkpoint_due(head, force=force)
        if new is not head:
            self._add_checkpoint(repo, new)
        return new

    def _checkpoint_due(self, head: Head, *, force: bool) -> Head:
        """``head`` with a checkpoint at its last entry if one is due (the same object if none is)."""
        pending = head.last_sequence - head.last_checkpoint_sequence
        if pending <= 0:
            return head
        now = self.clock()
        age = (now - head.last_checkpoint_at).total_seconds() if head.last_checkpoint_at else float("inf")
        if not (force or pending >= self.settings.checkpoint_every or age >= self.settings.checkpoint_interval_s):
            return head
        return Head(head.last_sequence, head.last_hash, head.last_sequence, now)

    def _add_checkpoint(self, repo: AuditRepository, head: Head) -> None:
        """The signed checkpoint at ``head`` (its time is the head's ``last_checkpoint_at``)."""
        assert head.last_checkpoint_at is not None
        checkpoint = audit.sign_checkpoint(self.signer, self.settings.node_id, head.last_sequence,
                                           head.last_hash, head.last_checkpoint_at)
        repo.add_checkpoint(checkpoint)
        if self.settings.timestamps:
            TimestampRepository(repo.connection).add_pending(
                "checkpoint", str(checkpoint.sequence), signed_digest(checkpoint.message(), checkpoint.signature),
                head.last_checkpoint_at)

    def checkpoint_if_due(self, *, force: bool = False) -> None:
        with self.uow(write=True) as uow:
            repo = uow.audit
            head = repo.lock_head()
            new = self._checkpoint_in(repo, head, force=force)
            if new != head:
                repo.set_head(new)
                uow.commit()

    def _safe_checkpoint(self) -> None:
        try:
            self.checkpoint_if_due()
        except Exception as error:  # the database is away; the next turn tries again
            log.error("audit checkpoint failed: %s: %s", type(error).__name__, error)


class _LoopFuture:
    """An event loop's future as the writer holds it: settled from the writer's thread in bulk, per loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]) -> None:
        self.loop = loop
        self.future = future


_Queued = tuple[AuditRecord | WriteTask, concurrent.futures.Future[Any] | _LoopFuture]
"""An entry or a write task as the writer's queue holds it, with its caller's future."""
_pending_wakes = threading.local()


def _settle_on_loop(settled: list[tuple[asyncio.Future[Any], Any, Exception | None]]) -> None:
    for future, result, error in settled:
        if future.done():  # the caller gave up on it (cancelled): its entry is committed anyway
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


def _wake_loops() -> None:
    """Hand each loop the outcomes gathered for it since the last wake-up, in one call."""
    pending: dict[asyncio.AbstractEventLoop, list[Any]] | None = getattr(_pending_wakes, "by_loop", None)
    if not pending:
        return
    _pending_wakes.by_loop = {}
    for loop, settled in pending.items():
        try:
            loop.call_soon_threadsafe(_settle_on_loop, settled)
        except RuntimeError:  # the loop is closed: nobody waits there any more
            pass


def _settle(future: concurrent.futures.Future[Any] | _LoopFuture, *, result: Any = 0,
            error: Exception | None = None) -> None:
    """Complete a caller's future unless the caller gave up on it (cancelled: its entry is committed anyway).
    A loop's future is gathered for ``_wake_loops``."""
    if isinstance(future, _LoopFuture):
        pending = getattr(_pending_wakes, "by_loop", None)
        if pending is None:
            pending = _pending_wakes.by_loop = {}
        pending.setdefault(future.loop, []).append((future.future, result, error))
        return
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except concurrent.futures.InvalidStateError:
        pass


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEntry]
    next_page_token: str


@dataclass(frozen=True)
class PurgeResult:
    deleted: int
    anchor_sequence: int


@dataclass(frozen=True)
class ChainStatus:
    """Where the trail stands: its first and last entries and the newest signed checkpoint."""

    first_sequence: int | None
    last_sequence: int
    last_hash: str
    checkpoint_sequence: int
    checkpoint_at: dt.datetime | None
    checkpoint_kid: str


class AuditApplication:
    """Reading the trail (officers) and keeping it (retention); nothing here edits an entry."""

    def __init__(self, uow: UnitOfWorkFactory, verifiers: Mapping[str, PublicKey], settings: AuditSettings,
                 clock: Clock = _utc_now) -> None:
        self.uow = uow
        self.verifiers = verifiers
        """The node's public keys, every rotation's (checkpoints of each still verify)."""
        self.settings = settings
        self.clock = clock

    def query(self, flt: AuditFilter, page_size: int = 0, page_token: str = "") -> AuditPage:
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        before = 0
        if page_token:
            try:
                token = json.loads(base64.urlsafe_b64decode(page_token.encode()))
                before = int(token["before"])
                if token["filter"] != repr(flt):
                    raise ValueError("filter changed")
            except (ValueError, KeyError, TypeError):
                raise InvalidField.one("page_token", "is not a page token of this query") from None
        with self.uow() as uow:
            entries = uow.audit.query(flt, before_sequence=before, limit=size + 1)
        more = len(entries) > size
        entries = entries[:size]
        token = ""
        if more:
            token = base64.urlsafe_b64encode(
                json.dumps({"before": entries[-1].sequence, "filter": repr(flt)}).encode()).decode()
        return AuditPage(entries, token)

    def entry(self, sequence: int) -> AuditEntry | None:
        """One entry by its sequence number (the console's detail page)."""
        with self.uow() as uow:
            return next(iter(uow.audit.entries(sequence, sequence)), None)

    def status(self) -> ChainStatus:
        with self.uow() as uow:
            repo = uow.audit
            head = repo.head()
            checkpoint = repo.checkpoint_at_or_before(head.last_sequence) if head.last_sequence else None
            first = repo.first_sequence()
        return ChainStatus(first, head.last_sequence, head.last_hash.hex(), checkpoint.sequence if checkpoint else 0,
                           checkpoint.at if checkpoint else None, checkpoint.kid if checkpoint else "")

    def public_keys(self) -> dict[str, audit.Verifier]:
        return dict(self.verifiers)

    def verify(self, stop: threading.Event | None = None) -> VerifyResult:
        """The whole chain. ``stop``: set by a stopping node, ends a long walk (a million entries take
        minutes) within a chunk of entries by raising :class:`VerificationStopped`."""
        with self.uow() as uow:
            repo = uow.audit
            checkpoints = repo.checkpoints()
            entries = repo.entries() if stop is None else _until(stop, repo.entries())
            return audit.verify(entries, checkpoints, keys=self.public_keys(), node_id=self.settings.node_id)

    def verify_recorded(self, by: Principal, via: str, stop: threading.Event | None = None) -> VerifyResult:
        """``verify``, and its outcome kept in the database with who asked (``via``: console, rpc, daily), so
        every replica's chain status shows the same last verification. A walk that was stopped records
        nothing (it did not finish)."""
        started = self.clock()
        result = self.verify(stop)
        with self.uow(write=True) as uow:
            uow.audit.add_verification(Verification(started, self.clock(), by.subject, by.department_code, via,
                                                    result))
            uow.commit()
        return result

    def last_verification(self) -> Verification | None:
        with self.uow() as uow:
            return uow.audit.last_verification()

    def export(self, since: dt.datetime | None = None, until: dt.datetime | None = None) -> Iterator[str]:
        """JSON lines: a header with the node's public keys, the anchor checkpoint, then entries and
        checkpoints in order. The range is widened back to a checkpoint so the file verifies on its own."""
        with self.uow() as uow:
            repo = uow.audit
            first = repo.first_sequence_at_or_after(since) if since else repo.first_sequence()
            last = repo.last_sequence_before(until) if until else None
            keys = [{"kid": k.kid, "algorithm": k.algorithm, "public_pem": k.public_pem, "created_at": k.created_at}
                    for k in self.verifiers.values()]
            yield json.dumps(audit.export_header(self.settings.node_id, keys, self.clock()), ensure_ascii=False)
            if first is None or (until and last is None):  # nothing in the range (no entry before until)
                return
            anchor = repo.checkpoint_at_or_before(first - 1) if first > 1 else None
            start = anchor.sequence + 1 if anchor else 1
            if anchor is not None:
                yield json.dumps(anchor.to_dict("anchor"), ensure_ascii=False)
            checkpoints = {c.sequence: c for c in repo.checkpoints(start, last)}
            for entry in repo.entries(start, last):
                yield json.dumps(entry.to_dict(), ensure_ascii=False)
                if entry.sequence in checkpoints:
                    yield json.dumps(checkpoints[entry.sequence].to_dict(), ensure_ascii=False)

    def purge(self, writer: AuditWriter | None = None) -> PurgeResult:
        """Delete entries older than the retention period, up to the newest checkpoint before the cut-off,
        which stays as the signed anchor of what remains."""
        cutoff = self.clock() - dt.timedelta(days=self.settings.retention_days)
        with self.uow(write=True) as uow:
            repo = uow.audit
            head = repo.lock_head()
            # The anchor must keep at least one entry after it: a trail purged down to a bare checkpoint
            # reads as one whose entries were deleted.
            anchor = repo.newest_checkpoint_before(cutoff, below_sequence=head.last_sequence)
            if anchor is None:
                return PurgeResult(0, 0)
            deleted = repo.purge_through(anchor.sequence)
            uow.commit()
        log.info("audit purge", extra={"deleted": deleted, "anchor": anchor.sequence})
        return PurgeResult(deleted, anchor.sequence)


class VerificationStopped(Exception):
    """A verification given up because the node is stopping (no verdict on the chain)."""


def _until(stop: threading.Event, entries: Iterator[AuditEntry], every: int = 500) -> Iterator[AuditEntry]:
    for count, entry in enumerate(entries):
        if count % every == 0 and stop.is_set():
            raise VerificationStopped("the node is stopping")
        yield entry


def verify_export(lines: Sequence[str] | Iterator[str], keys: dict[str, audit.Verifier],
                  node_id: str | None = None) -> VerifyResult:
    """Verify an export file offline with trusted public keys (not the ones the file carries)."""
    header, entries, checkpoints = audit.read_export(lines)
    return audit.verify(entries, checkpoints, keys=keys, node_id=node_id or header["node_id"])

