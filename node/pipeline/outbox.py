"""The outbox: the rows the ingest transaction writes (one per batch and subscriber: the records masked
per the subscriber's grant, sealed by the node, encoded in its platform's format), and the same rows as
the dispatcher drains them (``SqlOutbox``). A confirmed row is a delivery to its consumer (销账 of its
demand), recorded from what the row and its batch already say in the database."""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence

from adapters.codecs import envelope as envelopes
from adapters.codecs import relay
from adapters.platforms import Platform, codec_for
from adapters.rabbit import Dispatcher, DispatcherStats, OutboxPort, Outgoing, row_message
from adapters.rabbit.wire import pack
from catalog.lists import Grant
from catalog.records import Record
from node.config import Config
from node.pipeline.batches import IncomingBatch
from node.services.lists import ListsApplication, record_deliveries
from node.storage.exchange_repository import OutboxMessage, Subscription
from node.storage.unit_of_work import SqlUnitOfWorkFactory, UnitOfWork, UnitOfWorkFactory
from security.keys import SigningKey
from security.sealing import SEALED_CONTENT_TYPE, ConsumerKey, seal_to, sealing_context

Target = tuple[Subscription, Platform, Grant, ConsumerKey | None]
"""A live subscription to a resource, the platform it delivers to, the grant that decides its view and the
consumer's encryption key its messages are sealed to (None: it registered none, and they go in clear)."""


def targets(uow: UnitOfWork, platforms: Mapping[str, Platform], resource_code: str, now: dt.datetime
            ) -> list[Target]:
    """Each live subscription to the resource with its platform, the latest-expiring live grant and the
    consumer's newest live encryption key."""
    found = []
    keys: dict[str, ConsumerKey | None] = {}
    for subscription in uow.exchange.subscriptions_for(resource_code):
        platform = platforms.get(subscription.platform)
        grants = [g for g in uow.lists.grants_for(subscription.consumer_code, resource_code) if g.live(now)]
        if platform is not None and grants:
            consumer = subscription.consumer_code
            if consumer not in keys:
                stored = uow.exchange.consumer_key(consumer)
                keys[consumer] = ConsumerKey(stored.kid, stored.algorithm, stored.public_pem) if stored else None
            found.append((subscription, platform, max(grants, key=lambda g: g.expires_at), keys[consumer]))
    return found


def targets_key(found: Sequence[Target]) -> tuple:
    """What decides the outbox rows of a batch: who subscribes, where, under which grant and masking, sealed
    to which key."""
    return tuple((s.consumer_code, s.platform, p.kind, p.queue, g.id, tuple(g.items), tuple(sorted(g.masking.items())),
                  k.kid if k else "", g.clear_delivery) for s, p, g, k in found)


def unsealed(targets: tuple) -> tuple[list[str], list[str]]:
    """Of a ``targets_key``: the consumers with no encryption key that get records in clear (their grant
    allows it) and those whose records are withheld (it does not). The ingest's audit entry names both."""
    clear = sorted({t[0] for t in targets if not t[-2] and t[-1]})
    withheld = sorted({t[0] for t in targets if not t[-2] and not t[-1]})
    return clear, withheld


def rows(found: Sequence[Target], batch: IncomingBatch, fresh: Sequence[Record], now: dt.datetime, *,
         node_id: str, signer: SigningKey, hops: Mapping[str, Sequence[envelopes.Hop]] | None = None,
         disputed: Sequence[str] = ()) -> list[dict]:
    """Per target: the records masked per its grant, sealed with the node's signature, one encoded
    one-record envelope each, as the broker will carry them (``adapters.rabbit.row_message``).

    ``hops``: for records relayed by a lower tier, record id → every earlier node's signature over it; each
    envelope carries them when the grant left its record unchanged (node/pipeline/tiers.py). ``disputed``:
    ids of records whose envelopes are marked under an open objection (校核纠错, ``disputed_rows``)."""
    out = []
    for subscription, platform, grant, consumer_key in found:
        if consumer_key is None and not grant.clear_delivery:
            continue  # no key to seal to, and the grant does not allow clear text: withheld
        records = envelopes.masked(fresh, grant.items, grant.masking)
        parts = envelopes.seal_split(
            batch_id=batch.batch_id, node_id=node_id, provider_code=batch.provider_code,
            resource_code=batch.resource_code, consumer_code=subscription.consumer_code, records=records,
            signer=signer, now=now, checked=True, disputed=disputed)
        if hops:
            parts = [envelopes.with_hops(part, hops.get(part.records[0].id, ())) if part.records[0] == original
                     else part for part, original in zip(parts, fresh, strict=True)]
        codec = codec_for(platform.kind)
        messages = [(part.records[0].id, codec.encode(part, checked=True)) for part in parts]
        content_type, sealed_headers = codec.CONTENT_TYPE, {}
        if consumer_key is not None:
            seal = seal_to(consumer_key, sealing_context(batch.batch_id, consumer_key.kid))
            messages = [(record_id, seal.seal(record_id, body)) for record_id, body in messages]
            content_type, sealed_headers = SEALED_CONTENT_TYPE, seal.message_headers(codec.CONTENT_TYPE)
        headers, body = row_message(
            batch_id=batch.batch_id, resource_code=batch.resource_code, provider_code=batch.provider_code,
            consumer_code=subscription.consumer_code, node_id=node_id, signed=parts[0].signed, messages=messages)
        out.append({"batch_id": batch.batch_id, "platform": platform.name, "queue": platform.queue,
                    "consumer_code": subscription.consumer_code, "content_type": content_type,
                    "headers": {**headers, **sealed_headers}, "body": body})
    return out

def disputed_rows(uow: UnitOfWork, platforms: Mapping[str, Platform], provider_code: str, resource_code: str,
                  record_id: str, consumers: frozenset[str], notice_id: str, disputed: bool, now: dt.datetime, *,
                  node_id: str, signer: SigningKey, served: bool | None = None) -> list[dict]:
    """校核纠错 over the relay: the stored record again, in its own one-record batch signed by the node, to
    each live subscriber among ``consumers`` (those it was delivered to), marked disputed when an objection
    is raised and unmarked when the provider answers it. The record is unchanged, so a receiver deduplicates
    it by id and sequence and keeps only the mark; the notice's batch id is not a stored batch, so its
    confirmation counts as no delivery of the responsibility list. A node platform (a tier link) gets a
    signed dispute notice instead (``adapters.codecs.relay.encode_dispute``): the envelope's mark is not
    signed, and the upper node applies only what the lower node vouches for (``TierApplication``).
    ``served``: the envelopes' mark when it is not the objection's own (another objection is still open)."""
    record = uow.exchange.stored_record(provider_code, resource_code, record_id)
    if record is None:
        return []
    found = [t for t in targets(uow, platforms, resource_code, now) if t[0].consumer_code in consumers]
    notice = IncomingBatch(notice_id, provider_code, resource_code, (record,), b"", "", b"")
    out = rows([t for t in found if t[1].kind != "node"], notice, [record], now, node_id=node_id, signer=signer,
               disputed=(record_id,) if (disputed if served is None else served) else ())
    document = {"provider_code": provider_code, "resource_code": resource_code, "record_id": record_id,
                "objection_id": notice_id.rpartition(".")[0] or notice_id, "disputed": disputed,
                "at": now.isoformat()}
    for subscription, platform, _, _ in found:  # an upper (or lower) node: the signed notice, not the envelope
        if platform.kind != "node":
            continue
        body = relay.encode_dispute(document, node_id, signer)
        out.append({"batch_id": notice_id[:64], "platform": platform.name, "queue": platform.queue,
                    "consumer_code": subscription.consumer_code, "content_type": relay.DISPUTE_CONTENT_TYPE,
                    "headers": {"x-exnode-node": node_id, "x-exnode-resource": resource_code},
                    "body": pack([(f"dispute:{notice_id}:{record_id}", body)])})
    return out


log = logging.getLogger(__name__)


def claimant_id() -> str:
    """This dispatcher among the node's replicas: host, process and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def gone_on_this_host(claimant: str) -> bool:
    """Whether a claimant ran on this host in a process that no longer exists (a replica killed and
    restarted here need not wait out its predecessor's lease). Other hosts' claims run out by lease."""
    host, _, rest = claimant.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def backoff(attempts: int, now: dt.datetime) -> dt.datetime:
    """When a nacked message is tried again: 1 s, 2 s, 4 s … up to 5 minutes."""
    return now + dt.timedelta(seconds=min(300, 2 ** max(0, attempts - 1)))


class SqlOutbox(OutboxPort):
    """Claims due rows before handing them to the dispatcher, so replicas of one node sharing the
    database each publish different rows; a replica that dies leaves its claims to run out.

    ``claims=False`` (the embedded SQLite database, which one node process uses): due rows are read, not
    claimed; a claim would cost a write transaction with an fsync per poll for nobody's benefit."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Callable[[], dt.datetime],
                 lists: ListsApplication | None = None, *, claimant: str | None = None,
                 lease: dt.timedelta = dt.timedelta(seconds=60), claims: bool = True) -> None:
        self.uow = uow
        self.clock = clock
        self.lists = lists
        self.claims = claims
        self.claimant = claimant or claimant_id()
        self.lease = lease
        self._released_at: dt.datetime | None = None

    def due(self, limit: int, exclude: set[int]) -> list[Outgoing]:
        now = self.clock()
        if not self.claims:
            with self.uow() as uow:
                rows = uow.exchange.due(now, limit, exclude)
        else:
            if self._released_at is None or now - self._released_at >= self.lease / 2:
                self._release_dead_claims(now)
            with self.uow() as uow:  # a read first: an idle node takes no write lock every poll
                if not uow.exchange.any_due(now, exclude):
                    return []
            with self.uow(write=True) as uow:
                rows = uow.exchange.claim(self.claimant, now, self.lease, limit, exclude)
                uow.commit()
        unreadable = [r for r in rows if r.unreadable]
        if unreadable:
            self._dead_letter_unreadable(unreadable)
        return [Outgoing(r.id, r.queue, r.body, r.content_type, r.headers, f"{r.batch_id}:{r.platform}", r.attempts)
                for r in rows if not r.unreadable]

    def _dead_letter_unreadable(self, rows: Sequence[OutboxMessage]) -> None:
        """A body whose tag fails (changed in the database) or whose data key is gone is never published:
        the row goes dead with the reason, which names it (``exnode`` dead-letter tools show it)."""
        now = self.clock()
        with self.uow(write=True) as uow:
            for row in rows:
                uow.exchange.mark_failed(row.id, row.attempts + 1, now, row.unreadable, dead=True)
            uow.commit()
        for row in rows:
            log.error("outbox row not published: %s", row.unreadable)

    def _release_dead_claims(self, now: dt.datetime) -> None:
        self._released_at = now
        with self.uow() as uow:
            gone = [c for c in uow.exchange.live_claimants(now) if c != self.claimant and gone_on_this_host(c)]
        if gone:
            with self.uow(write=True) as uow:
                released = uow.exchange.release_claims(gone)
                uow.commit()
            log.info("took over %d outbox rows of dispatchers that are gone: %s", released, ", ".join(gone))

    def confirmed(self, ids: Sequence[int]) -> None:
        """Mark the rows confirmed and record their deliveries in ONE transaction per flush.

        Why: this runs beside the dispatcher's ioloop; one write transaction (BEGIN IMMEDIATE, a commit
        with fsync) per confirmed message would also queue behind every ingest for the SQLite write lock.
        The deliveries come from the rows and their batches in the database, not from the messages' headers.
        If recording them fails, the rows are still marked (their messages did reach the broker) and each
        delivery is tried on its own."""
        now = self.clock()
        try:
            with self.uow(write=True) as uow:
                uow.exchange.mark_confirmed(ids, now)
                if self.lists is not None:
                    record_deliveries(uow, uow.exchange.deliveries_of(ids), now)
                uow.commit()
            return
        except Exception as error:
            if self.lists is None:
                raise
            log.error("recording the deliveries of %d confirmed rows failed; one at a time: %s: %s", len(ids),
                      type(error).__name__, error)
        with self.uow(write=True) as uow:
            uow.exchange.mark_confirmed(ids, now)
            deliveries = uow.exchange.deliveries_of(ids)
            uow.commit()
        for provider, resource, consumer, batch_id, records in deliveries:
            try:
                self.lists.record_delivery(provider, resource, consumer, batch_id, records, now)
            except Exception as error:
                log.error("recording the delivery of batch %s to %s failed: %s: %s", batch_id, consumer,
                          type(error).__name__, error)

    def failed(self, message: Outgoing, error: str, *, dead: bool) -> None:
        now = self.clock()
        with self.uow(write=True) as uow:
            uow.exchange.mark_failed(message.id, message.attempts + 1, backoff(message.attempts + 1, now), error,
                                     dead=dead)
            uow.commit()


def build_dispatcher(config: Config, uow: SqlUnitOfWorkFactory, clock: Callable[[], dt.datetime],
                     lists: ListsApplication, *, stats: DispatcherStats | None = None) -> Dispatcher:
    """The outbox dispatcher over the node's database, as the node's thread or its dispatcher process runs it."""
    outbox = SqlOutbox(uow, clock, lists, lease=dt.timedelta(seconds=config.exchange.claim_lease_s),
                       claims=uow.dialect != "sqlite")
    return Dispatcher(config.rabbitmq.addresses, config.node.id, outbox, window=config.exchange.window,
                      max_attempts=config.exchange.max_attempts, stats=stats)
