"""Trusted timestamps of the node's roots (issue 17 §4): ingest queues each batch's Merkle root; a worker
stamps what waits every ``tsa.interval_s`` with ONE RFC 3161 token over the Merkle root of up to
``tsa.max_roots`` roots (X-Road stamps up to 10,000 signatures per token). During a TSA outage the node
keeps working and the roots wait (``exnode_tsa_unstamped_roots``, ``exnode_tsa_oldest_unstamped_age_seconds``);
once the oldest has waited ``tsa.max_unstamped_age_s`` (default 4 h), ingest is refused with UNAVAILABLE
naming the cause, until the TSA answers again. ``verify`` checks every stored token offline.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from adapters.tsa import TsaUnreachable, post_request
from catalog.errors import NotFound
from node.config import TsaSection
from node.services.errors import TimestampsUnavailable
from node.services.pull import DAY_SIGNATURE_CONTEXT
from node.storage.unit_of_work import UnitOfWorkFactory
from security.timestamps import (
    Evidence,
    TimestampInvalid,
    check,
    evidence_of,
    request_for,
    root_of_roots,
    signed_digest,
)

log = logging.getLogger(__name__)
Clock = Callable[[], dt.datetime]
TIMESTAMP_KINDS = ("verdict", "pull", "day", "checkpoint", "batch")
"""What the node queues for a timestamp: signed verdicts, pull manifests, closed days' manifests, audit
checkpoints and ingested batches' Merkle roots."""


@dataclass(frozen=True)
class Backlog:
    roots: int
    oldest_age_s: float


class Timestamps:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, settings: TsaSection, roots: list,
                 post: Callable[[str, bytes, float], bytes] = post_request) -> None:
        self.uow = uow
        self.clock = clock
        self.settings = settings
        self.roots = roots
        self.post = post
        self.last_error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the ingest side ----------------------------------------------------------------------------------
    def require_fresh(self) -> None:
        """Refuse new records once the oldest unstamped root has waited longer than the limit."""
        backlog = self.backlog()
        if backlog.oldest_age_s > self.settings.max_unstamped_age_s:
            raise TimestampsUnavailable(
                f"the time-stamping authority {self.settings.url} has not stamped for {backlog.oldest_age_s:.0f} s "
                f"(limit tsa.max_unstamped_age_s = {self.settings.max_unstamped_age_s:.0f} s; {backlog.roots} roots "
                f"wait{'; last error: ' + self.last_error if self.last_error else ''}): no new records until it does")

    def backlog(self) -> Backlog:
        with self.uow() as uow:
            count, oldest = uow.timestamps.backlog()
        return Backlog(count, (self.clock() - oldest).total_seconds() if oldest else 0.0)

    # -- the stamper ------------------------------------------------------------------------------------
    def stamp_once(self) -> int:
        """Stamp what waits (up to max_roots) with one token; the number of roots stamped. A TSA that does
        not answer, or whose reply does not check, leaves them waiting (logged, ``last_error``)."""
        with self.uow() as uow:
            waiting = uow.timestamps.pending(self.settings.max_roots)
        if not waiting:
            return 0
        message = root_of_roots([p.digest for p in waiting])
        request = request_for(message)
        try:
            reply = self.post(self.settings.url, request.der, self.settings.timeout_s)
            gen_time = check(reply, message, self.roots, request.nonce, what=f"the TSA's reply from {self.settings.url}")
        except (TsaUnreachable, TimestampInvalid) as error:
            self.last_error = str(error)
            log.warning("%d roots wait for a timestamp: %s", len(waiting), error)
            return 0
        self.last_error = ""
        with self.uow(write=True) as uow:
            uow.timestamps.add_token(message, reply, gen_time, waiting, self.clock())
            uow.commit()
        return len(waiting)

    def start(self) -> None:
        def run() -> None:
            while not self._stop.wait(self.settings.interval_s):
                try:
                    while self.stamp_once() >= self.settings.max_roots:
                        pass
                except Exception:
                    log.exception("the timestamp worker failed a round; it tries again")
        self._thread = threading.Thread(target=run, name="exnode-timestamps", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    # -- evidence for third parties -------------------------------------------------------------------
    def evidence(self, kind: str, ref: str) -> Evidence:
        """The token and inclusion proof of one stamped statement, for a client to check offline;
        TimestampsUnavailable while it waits for the TSA, NotFound when nothing of that name was queued."""
        with self.uow() as uow:
            found = uow.timestamps.covering(kind, ref)
            waiting = found is None and uow.timestamps.waiting(kind, ref)
        if found is None:
            if waiting:
                raise TimestampsUnavailable(f"{kind} {ref} waits for its timestamp from {self.settings.url} (stamped "
                                            f"every tsa.interval_s = {self.settings.interval_s:.0f} s); ask again then"
                                            + (f"; last error: {self.last_error}" if self.last_error else ""))
            raise NotFound(f"timestamp of {kind}", ref)
        covered, leaf, reply = found
        return evidence_of(kind, ref, covered, leaf, reply)

    # -- offline ----------------------------------------------------------------------------------------
    def verify(self) -> tuple[int, list[str]]:
        """(tokens checked, problems): each token's signature and chain against the trusted roots, its
        imprint against the Merkle root of the roots it covers, and each covered batch root against the
        batch the node stored."""
        problems: list[str] = []
        count = 0
        with self.uow() as uow:
            for token in uow.timestamps.tokens():
                count += 1
                what = f"timestamp {token.id}"
                try:
                    message = root_of_roots([p.digest for p in token.covered])
                    if message != token.root:
                        problems.append(f"{what}: its covered roots hash to {message.hex()}, it says {token.root.hex()}")
                    check(token.reply, message, self.roots, what=what)
                except (TimestampInvalid, ValueError) as error:
                    problems.append(str(error))
                checkpoints = {c.sequence: c for c in uow.audit.checkpoints()} if any(
                    p.kind == "checkpoint" for p in token.covered) else {}
                for pending in token.covered:
                    if pending.kind == "batch":
                        batch = uow.exchange.get_batch(pending.ref)
                        if batch is None or batch.merkle_root != pending.digest:
                            problems.append(f"{what}: batch {pending.ref}'s stored Merkle root is not the one stamped")
                    elif pending.kind == "day":
                        day = uow.pull.get_day(pending.ref)
                        if day is not None and signed_digest(DAY_SIGNATURE_CONTEXT + day.document.encode(),
                                                                 day.signature) != pending.digest:
                            problems.append(f"{what}: the manifest of day {pending.ref} is not the one stamped")
                    elif pending.kind == "checkpoint":
                        checkpoint = checkpoints.get(int(pending.ref))
                        if checkpoint is not None and signed_digest(
                                checkpoint.message(), checkpoint.signature) != pending.digest:
                            problems.append(f"{what}: audit checkpoint {pending.ref} is not the one stamped")
        return count, problems
