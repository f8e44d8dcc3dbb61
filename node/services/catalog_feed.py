"""The catalog feed: catalog events (created, updated, published, retired) for WatchCatalog streams and the
RabbitMQ fanout publisher, served from the catalog_events table.

Why from the table and not from memory: the table is written in the same transaction as each change, so
an event exists exactly when its change committed, replicas and other processes see it, and a watcher that
was away resumes from its position with nothing missed or repeated. Positions become visible in increasing
order on both databases (see ``CatalogRepository.append_events``), so "everything after P" is exact.

Live following: a commit in this process wakes the watchers at once (``ChangeSignal``); changes written by
other processes or replicas are found by polling the table every ``poll_s``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
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
        self._async: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._threads: set[threading.Event] = set()
        self.generation = 0
        """Counts notifications: a read begun after seeing generation g sees every commit notified up to g."""

    def notify(self) -> None:
        with self._lock:
            self.generation += 1
            waiters, events = list(self._async), list(self._threads)
        for loop, event in waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that loop is closed; its watcher is gone
                pass
        for flag in events:
            flag.set()

    def async_waiter(self) -> AsyncWaiter:
        return AsyncWaiter(self, asyncio.get_running_loop())

    def thread_waiter(self) -> threading.Event:
        flag = threading.Event()
        with self._lock:
            self._threads.add(flag)
        return flag

    def _register(self, entry: tuple[asyncio.AbstractEventLoop, asyncio.Event]) -> None:
        with self._lock:
            self._async.add(entry)

    def _unregister(self, entry: object) -> None:
        with self._lock:
            self._async.discard(entry)  # type: ignore[arg-type]
            self._threads.discard(entry)  # type: ignore[arg-type]

    def close_thread_waiter(self, flag: threading.Event) -> None:
        self._unregister(flag)


class AsyncWaiter:
    """One watcher's wake-up: clear it before reading the table, wait on it after, so a commit between
    the read and the wait is never slept through."""

    def __init__(self, signal: ChangeSignal, loop: asyncio.AbstractEventLoop) -> None:
        self._signal = signal
        self._event = asyncio.Event()
        self._entry = (loop, self._event)
        signal._register(self._entry)

    def clear(self) -> None:
        self._event.clear()

    async def wait(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._event.wait(), max(0.0, timeout))
        except TimeoutError:
            pass

    def close(self) -> None:
        self._signal._unregister(self._entry)


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


class SharedTail:
    """One read of the log's newest events for every live watcher at the same position.

    Why: after a commit, every watcher woke and read the table itself — at 1,000 watchers, 1,000 reads
    through the worker threads, and the last watcher heard of the commit seconds later. Watchers at the
    same position and notification generation now await the same read (single flight on the event loop);
    a read is shared only by watchers that saw its generation before it began, so none misses the commit
    that woke it."""

    def __init__(self, feed: CatalogFeed) -> None:
        self.feed = feed
        self._reads: dict[tuple[int, int], asyncio.Future[FeedRead]] = {}

    async def read(self, after: int, generation: int) -> FeedRead:
        key = (after, generation)
        future = self._reads.get(key)
        if future is None:
            future = asyncio.ensure_future(asyncio.to_thread(self.feed.read, after, EventFilter()))
            self._reads[key] = future
            future.add_done_callback(lambda _done: self._reads.pop(key, None))
        return await asyncio.shield(future)


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
        self.tail = SharedTail(self)

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
        key = self.macs.key(feed_tokens.MAC_PURPOSE)
        return feed_tokens.issue(feed_tokens.ResumePoint(self.node_id, principal.department_code, position,
                                                         self.macs.active_kid), key)

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
        waiter = self.signal.async_waiter()
        try:
            position = start
            replaying = True
            while True:
                self.check_authenticated(principal)
                waiter.clear()
                if replaying:
                    batch = await asyncio.to_thread(self.read, position, flt)
                    events = batch.events
                else:
                    batch = await self.tail.read(position, self.signal.generation)
                    events = [event for event in batch.events if passes(event, flt)]
                for event in events:
                    yield event, self.token(principal, event.position)
                position = batch.scanned_to
                if not batch.full:
                    if replaying:
                        replaying = False
                        yield CaughtUp(position), self.token(principal, position)
                    await waiter.wait(self._wait_s(principal))
        finally:
            waiter.close()

    def _wait_s(self, principal: Principal) -> float:
        if not principal.expires_at:
            return self.poll_s
        return min(self.poll_s, principal.expires_at + self.leeway_s - self.wall_clock() + 0.01)

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
