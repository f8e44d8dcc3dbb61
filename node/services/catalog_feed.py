"""The catalog feed: catalog events (created, updated, published, retired) for WatchCatalog streams and the
RabbitMQ fanout publisher, served from the catalog_events table.

Why from the table and not from memory: the table is written in the same transaction as each change, so
an event exists exactly when its change committed, replicas and other processes see it, and a watcher that
was away resumes from its position with nothing missed or repeated. Positions become visible in increasing
order on both databases (see ``CatalogRepository.append_events``), so "everything after P" is exact.

Live following: a commit in this process wakes the watchers at once (``ChangeSignal``); changes written by
other processes or replicas are found by one poller per event loop reading the log's end every ``poll_s``.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from adapters.rabbit.fanout import FanoutBatch, FanoutMessage, FanoutSource
from catalog.errors import InvalidField
from catalog.model import Classification
from node.storage.catalog_repository import PUBLIC_EVENT_KINDS, EventFilter
from node.storage.unit_of_work import UnitOfWorkFactory
from security import feed_tokens
from security.identity import AuthenticationError, Principal
from security.keys import MacKeys, UnusableKey
from security.policy import Action, PermissionDenied, Policy, Target

log = logging.getLogger(__name__)
BATCH = 500
PUBLISHER_CURSOR = "fanout"


@dataclass(frozen=True)
class FeedEvent:
    position: int
    kind: str
    """CREATED, UPDATED, PUBLISHED or RETIRED."""
    code: str
    version: int
    provider_code: str
    name: str
    classification: str
    at: dt.datetime


@dataclass(frozen=True)
class CaughtUp:
    """The replay is over: live events follow. ``position`` is where the watcher's stream now stands."""

    position: int


@dataclass(frozen=True)
class FeedRead:
    events: list[FeedEvent]
    scanned_to: int
    """The position up to which the log was read (events the filter left out included)."""
    full: bool
    """The read stopped at its limit: more may follow at once."""


class ChangeSignal:
    """Wakes feed readers when this process commits a catalog change. Thread-safe: use cases commit on
    worker threads, watchers wait on the event loop, the fanout publisher on its own thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loops: dict[asyncio.AbstractEventLoop, LoopTail] = {}
        self._threads: set[threading.Event] = set()
        self.generation = 0
        """Counts notifications (the fanout publisher's and tests' view)."""

    def notify(self) -> None:
        with self._lock:
            self.generation += 1
            broadcasts, events = list(self._loops.items()), list(self._threads)
        for loop, broadcast in broadcasts:  # one wake-up per event loop, however many watchers wait on it
            try:
                loop.call_soon_threadsafe(broadcast.fire)
            except RuntimeError:  # that loop is closed; its watchers are gone
                pass
        for flag in events:
            flag.set()

    def broadcast(self, feed: CatalogFeed) -> LoopTail:
        """The running loop's tail (made on first use): every live watcher on this loop follows it."""
        loop = asyncio.get_running_loop()
        with self._lock:
            broadcast = self._loops.get(loop)
            if broadcast is None or broadcast.closed:
                broadcast = self._loops[loop] = LoopTail(feed, loop, self)
            broadcast.watchers += 1
        return broadcast

    def _forget(self, broadcast: LoopTail) -> None:
        with self._lock:
            if self._loops.get(broadcast.loop) is broadcast:
                del self._loops[broadcast.loop]

    def thread_waiter(self) -> threading.Event:
        flag = threading.Event()
        with self._lock:
            self._threads.add(flag)
        return flag

    def close_thread_waiter(self, flag: threading.Event) -> None:
        with self._lock:
            self._threads.discard(flag)


class Watcher:
    """One live stream as the loop's tail sees it: where it stands, what it may see, how to wake it."""

    __slots__ = ("position", "filter", "woken")

    def __init__(self, position: int, flt: EventFilter, woken: asyncio.Future[None]) -> None:
        self.position = position
        self.filter = flt
        self.woken = woken

    def wake(self) -> None:
        if not self.woken.done():
            self.woken.set_result(None)


class LoopTail:
    """The log's newest events, read once for all of one event loop's live watchers, and handed to each
    watcher whose filter passes one of them.

    Why: each watcher had its own wake-up call from the committing thread, its own one-second poll and its
    own turn through the table after every commit — also after commits it may not see (another
    department's draft). At 1,000 watchers a commit reached the last one 0.4–1.3 s late. Now a commit costs
    one call per loop and one read; the tail wakes only the watchers with something to send. One poller
    per loop reads the log every ``poll_s`` for other processes' and replicas' commits.

    Exactness: the tail reads "after ``end``" in position order, and positions become visible in increasing
    order (``CatalogRepository.append_events``), so ``recent`` holds every event in (``base``, ``end``].
    A watcher in (``base``, ``end``] takes its events from there; one behind ``base`` reads the table
    itself (replay); one ahead of ``end`` waits for the tail to pass it. Everything runs on the loop's
    thread, so a watcher's look at ``recent`` and its registering to be woken are one step."""

    KEEP = 4096
    """Events kept in memory: a watcher further behind reads the table."""

    def __init__(self, feed: CatalogFeed, loop: asyncio.AbstractEventLoop, signal: ChangeSignal) -> None:
        self.feed = feed
        self.loop = loop
        self.signal = signal
        self.watchers = 0
        self.closed = False
        self.base = -1
        """-1 until the first read: nothing is known yet."""
        self.end = -1
        self.recent: collections.deque[FeedEvent] = collections.deque()
        self.waiting: set[Watcher] = set()
        self._reading: asyncio.Task[None] | None = None
        self._again = False
        self._poller: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] = loop.create_future()

    def fire(self) -> None:
        """Something committed: read the log's end (again, if a read is already under way — it may have begun
        before the commit)."""
        if self.closed:
            return
        if self._reading is not None:
            self._again = True
            return
        self._reading = self.loop.create_task(self._read())

    async def ready(self) -> None:
        """The tail has read once (``base``/``end`` known)."""
        if self._poller is None and not self.closed:
            self._poller = self.loop.create_task(self._poll())
        if not self._ready.done():
            await asyncio.shield(self._ready)

    async def _read(self) -> None:
        try:
            while True:
                self._again = False
                try:
                    if self.end < 0:  # the first read: the tail starts at the log's end
                        self.base = self.end = await asyncio.to_thread(self.feed.last_position)
                        self._ready.set_result(None)
                    batch = await asyncio.to_thread(self.feed.read, self.end, EventFilter())
                except Exception as error:  # the database is away: the poller tries again
                    log.warning("catalog feed read failed: %s: %s", type(error).__name__, error)
                    return
                self._take(batch)
                if not (batch.full or self._again) or self.closed:
                    return
        finally:
            self._reading = None

    def _take(self, batch: FeedRead) -> None:
        new = [event for event in batch.events if event.position > self.end]
        self.recent.extend(new)
        self.end = max(self.end, batch.scanned_to)
        while len(self.recent) > self.KEEP:
            self.base = self.recent.popleft().position
        if not new:
            return
        for watcher in list(self.waiting):
            if watcher.position < self.base or any(event.position > watcher.position and passes(event, watcher.filter)
                                                   for event in new):
                watcher.wake()

    def events_after(self, position: int, flt: EventFilter) -> list[FeedEvent]:
        """The kept events after ``position`` the filter passes (``base`` <= position)."""
        if not self.recent or self.recent[-1].position <= position:
            return []
        return [event for event in self.recent if event.position > position and passes(event, flt)]

    async def _poll(self) -> None:
        while not self.closed:
            self.fire()
            await asyncio.sleep(self.feed.poll_s)

    def leave(self) -> None:
        """One watcher is gone; the last one stops the poller."""
        with self.signal._lock:
            self.watchers -= 1
            last = self.watchers <= 0
            if last:
                self.closed = True
        if last:
            self.signal._forget(self)
            if self._poller is not None:
                self._poller.cancel()


def passes(event: FeedEvent, flt: EventFilter) -> bool:
    """``EventFilter`` in memory, as CatalogRepository.feed_events applies it in SQL (live watchers share
    one read of the log's new events and each keeps what its filter passes)."""
    if flt.visible_to is not None and event.kind not in PUBLIC_EVENT_KINDS and event.provider_code != flt.visible_to:
        return False
    if flt.public_only and event.kind not in PUBLIC_EVENT_KINDS:
        return False
    if flt.provider_code and event.provider_code != flt.provider_code:
        return False
    if flt.classification and event.classification != flt.classification.value:
        return False
    return not flt.code_prefix or event.code.startswith(flt.code_prefix)


def _event(row: object) -> FeedEvent:
    return FeedEvent(row.sequence, row.kind, row.code, row.version, row.provider_code,  # type: ignore[attr-defined]
                     row.name, row.classification, row.at)  # type: ignore[attr-defined]


class CatalogFeed:
    """Who may read which events, resume tokens, and following the log."""

    def __init__(self, uow: UnitOfWorkFactory, policy: Policy, macs: MacKeys, node_id: str, *,
                 signal: ChangeSignal | None = None, poll_s: float = 1.0, leeway_s: float = 0.0,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.uow = uow
        self.policy = policy
        self.macs = macs
        self.node_id = node_id
        self.signal = signal or ChangeSignal()
        self.poll_s = poll_s
        self.leeway_s = leeway_s
        """The token verifier's skew allowance: a stream ends when its bearer JWT would be refused."""
        self.wall_clock = wall_clock
        self._tokens: dict[tuple[str, int, str], str] = {}

    # -- starting a watch ---------------------------------------------------------------------------
    def event_filter(self, principal: Principal, provider_code: str = "", classification: Classification | None = None,
                     code_prefix: str = "") -> EventFilter:
        """The caller's view: its own department's draft events and everybody's published/retired ones."""
        self.policy.require(principal, Action.CATALOG_READ, Target("catalog"))
        if len(code_prefix) > 40:
            raise InvalidField.one("code_prefix", f"{len(code_prefix)} characters, at most 40")
        if len(provider_code) > 18:
            raise InvalidField.one("provider_code", f"{len(provider_code)} characters; a 统一社会信用代码 has 18")
        return EventFilter(visible_to=self.policy.draft_visibility(principal), provider_code=provider_code,
                           classification=classification, code_prefix=code_prefix)

    def start(self, principal: Principal, resume_token: str, *, from_beginning: bool = False) -> int:
        """The position after which the caller's stream starts: its token's, 0, or the current end."""
        self.check_authenticated(principal)
        if resume_token and from_beginning:
            raise InvalidField.one("from_beginning", "cannot be combined with resume_token")
        with self.uow() as uow:
            end = uow.catalog.last_event_position()
        if not resume_token:
            return 0 if from_beginning else end
        point = self._check_token(principal, resume_token)
        if point.position > end:
            raise InvalidField.one("resume_token", f"is ahead of this node's catalog feed (position {point.position}, "
                                                   f"the feed ends at {end}): was the node's database restored from "
                                                   "a backup? start again without a token")
        return point.position

    def _check_token(self, principal: Principal, token: str) -> feed_tokens.ResumePoint:
        def mac_key(kid: str) -> bytes:
            try:
                return self.macs.key(feed_tokens.MAC_PURPOSE, kid)
            except UnusableKey as error:
                raise KeyError(kid) from error

        try:
            return feed_tokens.check(token, node_id=self.node_id, department_code=principal.department_code,
                                     mac_key=mac_key)
        except feed_tokens.TokenRefused as error:
            if error.reason == "other_department":
                raise PermissionDenied(Action.CATALOG_READ, Target("resume_token"), str(error)) from None
            raise InvalidField.one("resume_token", str(error)) from None

    def token(self, principal: Principal, position: int) -> str:
        """Remembered per (department, position, key): every live watcher of a department is sent the same
        token for the same event, and at 1,000 watchers issuing each was a tenth of a commit's cost."""
        kid = self.macs.active_kid
        cache_key = (principal.department_code, position, kid)
        token = self._tokens.get(cache_key)
        if token is None:
            token = feed_tokens.issue(feed_tokens.ResumePoint(self.node_id, principal.department_code, position, kid),
                                      self.macs.key(feed_tokens.MAC_PURPOSE, kid))
            if len(self._tokens) >= 8192:
                self._tokens.clear()
            self._tokens[cache_key] = token
        return token

    def position_of(self, principal: Principal, code: str) -> tuple[FeedEvent, str] | None:
        """A resource's newest event the caller sees, and the resume token that follows the feed from there
        (``exnode catalog watch --since TOKEN``): a partner's page says where the resource stands."""
        flt = self.event_filter(principal)
        with self.uow() as uow:
            row = uow.catalog.last_event_of(code, flt.visible_to)
        if row is None:
            return None
        event = _event(row)
        return event, self.token(principal, event.position)

    def check_authenticated(self, principal: Principal) -> None:
        """A stream lives no longer than its bearer JWT: the caller must come back with a fresh one."""
        if principal.expires_at and self.wall_clock() > principal.expires_at + self.leeway_s:
            raise AuthenticationError("expired", "the bearer token expired during the catalog watch; reconnect with "
                                                 "a fresh token and the last resume_token")

    # -- reading ------------------------------------------------------------------------------------
    def read(self, after: int, flt: EventFilter, limit: int = BATCH) -> FeedRead:
        with self.uow() as uow:
            end = uow.catalog.last_event_position()
            rows = uow.catalog.feed_events(after, end, flt, limit)
        events = [_event(r) for r in rows]
        full = len(events) == limit
        return FeedRead(events, events[-1].position if full else max(after, end), full)

    async def follow(self, principal: Principal, start: int, flt: EventFilter
                     ) -> AsyncIterator[tuple[FeedEvent | CaughtUp, str]]:
        """Replay the events after ``start``, then (after one CaughtUp marker) follow live; each item comes
        with the token that resumes after it. Ends with AuthenticationError when the caller's JWT expires."""
        loop = asyncio.get_running_loop()
        tail = self.signal.broadcast(self)
        watcher = Watcher(start, flt, loop.create_future())
        expiry = self._expiry_timer(loop, principal, watcher)
        try:
            await tail.ready()
            caught_up = False
            while True:
                self.check_authenticated(principal)
                if watcher.position < tail.base:  # behind what the tail keeps: read the table
                    batch = await asyncio.to_thread(self.read, watcher.position, flt)
                    for event in batch.events:
                        yield event, self.token(principal, event.position)
                    watcher.position = batch.scanned_to
                    if batch.full or watcher.position < tail.base:
                        continue
                events = tail.events_after(watcher.position, flt)
                if events:
                    for event in events:
                        yield event, self.token(principal, event.position)
                        watcher.position = event.position
                    continue  # the yields let the tail move on: look again
                watcher.position = max(watcher.position, tail.end)
                if not caught_up:
                    caught_up = True
                    yield CaughtUp(watcher.position), self.token(principal, watcher.position)
                    continue
                if expiry is not None and expiry.when() <= loop.time():  # fired a hair early: again
                    expiry = self._expiry_timer(loop, principal, watcher)
                if watcher.woken.done():
                    watcher.woken = loop.create_future()
                tail.waiting.add(watcher)
                try:
                    await watcher.woken
                finally:
                    tail.waiting.discard(watcher)
        finally:
            if expiry is not None:
                expiry.cancel()
            tail.leave()

    def _expiry_timer(self, loop: asyncio.AbstractEventLoop, principal: Principal, watcher: Watcher
                      ) -> asyncio.TimerHandle | None:
        """Wakes the watcher when its caller's JWT expires (one timer a stream, not one a wait); the woken
        stream then ends."""
        if not principal.expires_at:
            return None
        return loop.call_later(max(0.0, principal.expires_at + self.leeway_s - self.wall_clock() + 0.01),
                               watcher.wake)

    def last_position(self) -> int:
        with self.uow() as uow:
            return uow.catalog.last_event_position()

    # -- the fanout publisher's source --------------------------------------------------------------
    def publisher_cursor(self) -> int:
        """Where the fanout publisher's confirmed messages end."""
        with self.uow() as uow:
            return uow.catalog.feed_cursor(PUBLISHER_CURSOR)

    def published_up_to(self, position: int, now: dt.datetime) -> None:
        """The broker confirmed everything up to ``position``: move the publisher's cursor there."""
        with self.uow(write=True) as uow:
            uow.catalog.advance_feed_cursor(PUBLISHER_CURSOR, position, now)
            uow.commit()


def event_document(event: FeedEvent, node_id: str) -> dict[str, object]:
    """An event as JSON (the fanout messages' body, ``exnode catalog watch --json``)."""
    return {"node": node_id, "position": event.position, "kind": event.kind, "code": event.code,
            "version": event.version, "provider_code": event.provider_code, "name": event.name,
            "classification": event.classification, "at": event.at.astimezone(dt.UTC).isoformat()}


class FeedFanoutSource(FanoutSource):
    """The fanout publisher's view of the feed: public events after its confirmed cursor."""

    def __init__(self, feed: CatalogFeed, clock: Callable[[], dt.datetime]) -> None:
        self.feed = feed
        self.clock = clock

    def cursor(self) -> int:
        return self.feed.publisher_cursor()

    def pending(self, limit: int, after: int) -> FanoutBatch:
        read = self.feed.read(after, EventFilter(public_only=True), limit)
        messages = [FanoutMessage(e.position, json.dumps(event_document(e, self.feed.node_id), ensure_ascii=False)
                                  .encode(), {"x-exnode-position": e.position, "x-exnode-node": self.feed.node_id,
                                              "x-exnode-kind": e.kind, "x-exnode-resource": e.code,
                                              "x-exnode-provider": e.provider_code})
                    for e in read.events]
        return FanoutBatch(messages, read.scanned_to, read.full)

    def confirmed(self, position: int) -> None:
        self.feed.published_up_to(position, self.clock())
