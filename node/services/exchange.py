"""The exchange pipeline's use cases: provider keys, ingest of signed batches, subscriptions, status.

Ingest checks, in order and each with its own error: identity, responsibility for the resource, size
limits, the payload against the resource's items, the provider's signature over the batch's Merkle
root, and duplicates / sequence order. Then ONE transaction stores the records, the batch, its audit
entry, the delivery that the responsibility list counts, and one outbox row per subscriber (masked per
its grant, sealed with the node's signature, encoded in its platform's format). Only then is the
provider answered; the dispatcher relays the outbox to RabbitMQ.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from adapters import envelope as envelopes
from adapters.platforms import Platform, codec_for
from adapters.rabbit import pack
from catalog.errors import AlreadyExists, FieldProblem, InvalidField, NotFound
from catalog.lists import Grant
from catalog.model import Item, ResourceStatus
from catalog.records import PayloadSchema, Record, canonical_record, with_canonical
from node.services.audit import AuditWriter
from node.storage.exchange_repository import ProviderKey, StoredBatch, Subscription
from node.storage.unit_of_work import UnitOfWork, UnitOfWorkFactory
from security import merkle
from security.audit import AuditRecord
from security.identity import SYSTEM_ROLE, Principal
from security.keys import KeyError_, KeyStore, PublicKey, parse_public_key
from security.policy import Action, PermissionDenied, Policy, Target

Clock = Callable[[], dt.datetime]


class RequestTooLarge(Exception):
    """Over one of the node's batch limits; the message names the limit."""


class BrokerUnavailable(Exception):
    """RabbitMQ could not be reached for a step that needs it now (declaring a subscriber's queue)."""


class BadSignature(Exception):
    """The batch's signature does not verify: forged, made with another key, or over other records."""


@dataclass(frozen=True)
class Limits:
    max_records: int = 5000
    max_record_bytes: int = 64 * 1024
    max_batch_bytes: int = 8 * 1024 * 1024


@dataclass(frozen=True)
class IncomingBatch:
    batch_id: str
    provider_code: str
    resource_code: str
    records: tuple[Record, ...]
    merkle_root: bytes
    kid: str
    signature: bytes
    payload_sizes: tuple[int, ...] | None = None
    """Bytes of each payload as the provider sent it (gRPC); None: measured as compact JSON."""


@dataclass(frozen=True)
class CheckedBatch:
    """A batch that passed every check that needs no write (``ExchangeApplication.check``): its records
    carry their canonical payloads, ``hashes`` are their content hashes."""

    batch: IncomingBatch
    hashes: tuple[bytes, ...]
    now: dt.datetime
    outbox: PreparedOutbox | None = None


@dataclass(frozen=True)
class PreparedOutbox:
    """The outbox rows of every record of a batch, computed before the write transaction (masking,
    sealing and encoding are most of the ingest's work, and SQLite has one writer at a time). Used only if
    the subscribers and grants are still ``targets`` and every record turns out fresh; else recomputed."""

    targets: tuple
    rows: list[dict]


@dataclass(frozen=True)
class IngestResult:
    batch_id: str
    accepted: int
    duplicates: int
    gaps: tuple[str, ...]
    subscribers: int


def batch_leaves(provider_code: str, resource_code: str, records: Sequence[Record]) -> list[bytes]:
    return [canonical_record(provider_code, resource_code, r) for r in records]


class ExchangeApplication:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, policy: Policy, keys: KeyStore, node_id: str,
                 platforms: Sequence[Platform], audit_writer: AuditWriter, limits: Limits | None = None,
                 declare_queue: Callable[[str], None] | None = None) -> None:
        self.uow = uow
        self.clock = clock
        self.policy = policy
        self.keys = keys
        self.node_id = node_id
        self.platforms = {p.name: p for p in platforms}
        self.audit_writer = audit_writer
        self.limits = limits or Limits()
        self.declare_queue = declare_queue
        """Declares a subscriber's durable quorum queue on the broker (the bootstrap gives the real one)."""
        self._schemas: dict[tuple[Item, ...], PayloadSchema] = {}
        self.on_outbox: Callable[[], None] | None = None
        """Called after a commit that wrote outbox rows: the dispatcher publishes them now, not at its next poll."""

    # -- provider keys ----------------------------------------------------------------------------------
    def register_key(self, principal: Principal, department_code: str, algorithm: str, public_pem: str
                     ) -> ProviderKey:
        """A department's public key for its batch signatures (and its receipts)."""
        self.policy.require(principal, Action.PROVIDER_KEY_WRITE, Target.department(department_code))
        try:
            public = parse_public_key(algorithm, public_pem)
        except KeyError_ as error:
            raise InvalidField.one("public_pem", f"not a {algorithm} public key: {error}") from None
        kid = public.kid
        key = ProviderKey(kid, department_code, algorithm, public_pem, self.clock())
        with self.uow(write=True) as uow:
            existing = uow.exchange.get_key(kid)
            if existing is not None:
                if existing.department_code != department_code:
                    raise AlreadyExists("key", f"{kid} (registered for {existing.department_code})")
                return existing
            uow.exchange.add_key(key)
            uow.commit()
        return key

    # -- ingest -----------------------------------------------------------------------------------------
    def ingest(self, principal: Principal, batch: IncomingBatch) -> IngestResult:
        """Check the batch, then store it in one transaction; each refusal names its check."""
        return self.store(principal, self.check(principal, batch))

    def check(self, principal: Principal, batch: IncomingBatch) -> CheckedBatch:
        """Steps 1-5, which write nothing: a stream checks its next batch while the one before commits."""
        # 1. identity: a provider (or its platform) of the department the batch is from.
        self.policy.require(principal, Action.EXCHANGE_INGEST, Target.department(batch.provider_code))
        if not batch.batch_id or len(batch.batch_id) > 64:
            raise InvalidField.one("batch_id", "is required, at most 64 characters")
        with self.uow() as uow:
            resource = uow.catalog.get(batch.resource_code)
        # 2. responsibility for the resource.
        if resource is None:
            raise NotFound("resource", batch.resource_code)
        if resource.provider_code != batch.provider_code:
            raise PermissionDenied(Action.EXCHANGE_INGEST, Target.resource(batch.resource_code, resource.provider_code),
                                   f"department {batch.provider_code} is not responsible for {batch.resource_code} "
                                   f"(its provider is {resource.provider_code})")
        if resource.status is not ResourceStatus.PUBLISHED:
            raise InvalidField.one("resource_code", f"{batch.resource_code} is {resource.status.value}: records are "
                                                    "accepted for published resources only")
        # 3. size limits.
        self._check_size(batch)
        # 4. payloads against the published items.
        schema = self._schema(resource.latest.metadata.items)
        problems: list[FieldProblem] = []
        for index, record in enumerate(batch.records):
            problems.extend(schema.problems(record, f"records[{index}]"))
        if not batch.records:
            problems.append(FieldProblem("records", "a batch needs at least one record"))
        if problems:
            raise InvalidField(problems)
        # 5. the provider's signature over the Merkle root of exactly these records. Each payload is
        # serialised once (``with_canonical``): the Merkle leaves, their SHA-256 (each record's content hash,
        # ``content_hash``) and the stored row all come from that text.
        batch = replace(batch, records=tuple(with_canonical(record) for record in batch.records))
        leaves = batch_leaves(batch.provider_code, batch.resource_code, batch.records)
        self._check_signature(batch, leaves)
        now = self.clock()
        with self.uow() as uow:
            targets = self._targets(uow, batch.resource_code, now)
        prepared = PreparedOutbox(_targets_key(targets), self._outbox_rows(targets, batch, batch.records, now))
        return CheckedBatch(batch, tuple(hashlib.sha256(leaf).digest() for leaf in leaves), now, prepared)

    def store(self, principal: Principal, checked: CheckedBatch) -> IngestResult:
        """Step 6 and the transaction: duplicates and sequence order against what is stored, then the
        records, the batch, its audit entry and the outbox rows, committed together."""
        return self._store(principal, checked.batch, checked.now, checked.hashes, checked.outbox)

    def _schema(self, items: tuple[Item, ...]) -> PayloadSchema:
        """The resource version's items prepared once, not per batch (a version's items never change)."""
        schema = self._schemas.get(items)
        if schema is None:
            if len(self._schemas) >= 256:
                self._schemas.clear()
            schema = self._schemas[items] = PayloadSchema(items)
        return schema

    def _check_size(self, batch: IncomingBatch) -> None:
        limits = self.limits
        if len(batch.records) > limits.max_records:
            raise RequestTooLarge(f"records: {len(batch.records)} records, at most {limits.max_records} per batch")
        total = 0
        sizes = batch.payload_sizes
        if sizes is None or len(sizes) != len(batch.records):
            sizes = tuple(len(json.dumps(dict(r.payload), ensure_ascii=False).encode()) for r in batch.records)
        for index, size in enumerate(sizes):
            if size > limits.max_record_bytes:
                raise RequestTooLarge(f"records[{index}].payload: {size} bytes, at most {limits.max_record_bytes}")
            total += size
        if total > limits.max_batch_bytes:
            raise RequestTooLarge(f"records: {total} bytes of payload, at most {limits.max_batch_bytes} per batch")

    def _check_signature(self, batch: IncomingBatch, leaves: Sequence[bytes]) -> None:
        with self.uow() as uow:
            key = uow.exchange.get_key(batch.kid)
        if key is None or key.department_code != batch.provider_code:
            raise BadSignature(f"key_id: {batch.kid!r} is not a registered key of department {batch.provider_code}")
        if key.revoked_at is not None:
            raise BadSignature(f"key_id: key {batch.kid} was revoked at {key.revoked_at:%Y-%m-%d}")
        tree = merkle.MerkleTree.from_leaves(leaves)
        if tree.root != batch.merkle_root:
            raise BadSignature("merkle_root: does not match the records (the records or the root were changed)")
        public = PublicKey(key.kid, key.algorithm, key.public_pem, "")
        message = merkle.SignedBatch.signing_input(tree.size, tree.root)
        if not public.verify(message, batch.signature):
            raise BadSignature(f"signature: does not verify with key {key.kid} of department {key.department_code}")

    def _store(self, principal: Principal, batch: IncomingBatch, now: dt.datetime, hashes: Sequence[bytes],
               prepared: PreparedOutbox | None = None) -> IngestResult:
        provider, resource_code = batch.provider_code, batch.resource_code
        with self.uow(write=True) as uow:
            repo = uow.exchange
            previous = repo.get_batch(batch.batch_id)
            if previous is not None:
                raise AlreadyExists("batch", f"{batch.batch_id} (received {previous.received_at:%Y-%m-%d %H:%M:%S} UTC, "
                                             f"{previous.record_count} records); a replay changes nothing")
            stored = repo.content_hashes(provider, resource_code, [r.id for r in batch.records])
            fresh: list[tuple[Record, bytes]] = []
            duplicates = 0
            seen: dict[str, bytes] = {}
            problems = []
            for index, (record, digest) in enumerate(zip(batch.records, hashes, strict=True)):
                known = stored.get(record.id)
                if known is None and record.id in seen:
                    known = seen[record.id].hex()
                if known is not None:
                    if known != digest.hex():
                        problems.append(FieldProblem(f"records[{index}].id", f"{record.id} was already received with "
                                                                             "other content"))
                    duplicates += 1
                    continue
                seen[record.id] = digest
                fresh.append((record, digest))
            if problems:
                raise InvalidField(problems)
            last = repo.last_sequence(provider, resource_code)
            gaps, order = _sequence_check(last, [r for r, _ in fresh])
            if order:
                raise InvalidField(order)
            # Numbered at commit, so that the first pull after an ingest has nothing left to number. The
            # sequencer's lock is taken last, after every read, and held to commit (the audit chain's
            # head is held from its append to commit as well: ingest commits were already serial there).
            first_position = uow.pull.claim_positions() if fresh else None
            repo.add_records(provider, resource_code, batch.batch_id, fresh, now, first_position=first_position)
            repo.add_batch(StoredBatch(batch.batch_id, provider, resource_code, len(fresh), batch.merkle_root,
                                       batch.kid, now, gaps), batch.signature)
            subscribers = 0
            if fresh:
                targets = self._targets(uow, resource_code, now)
                if prepared is not None and len(fresh) == len(batch.records) \
                        and prepared.targets == _targets_key(targets):
                    rows = prepared.rows
                else:  # duplicates left out, or a subscription or grant changed since the check
                    rows = self._outbox_rows(targets, batch, [r for r, _ in fresh], now)
                uow.exchange.add_outbox(rows, now)
                subscribers = len(rows)
            if fresh:
                uow.lists.add_delivery(provider, resource_code, "", now, batch.batch_id, len(fresh))
            detail = (f"batch {batch.batch_id}: {len(fresh)} records stored, {duplicates} duplicates, "
                      f"{subscribers} subscribers" + (f"; sequence gaps {', '.join(gaps)}" if gaps else ""))
            self.audit_writer.append_in(uow.connection, [AuditRecord(
                at=now, request_id=batch.batch_id, subject=principal.subject, department_code=principal.department_code,
                roles=tuple(sorted(principal.roles)), action="exchange/store-batch", target=f"resource:{resource_code}",
                result="OK", detail=detail)])
            uow.commit()
        if subscribers and self.on_outbox is not None:
            self.on_outbox()
        return IngestResult(batch.batch_id, len(fresh), duplicates, tuple(gaps), subscribers)

    def _outbox(self, uow: UnitOfWork, batch: IncomingBatch, fresh: Sequence[Record], now: dt.datetime,
                hops: Mapping[str, Sequence[envelopes.Hop]] | None = None) -> int:
        """One outbox row per live subscription, written in the caller's transaction (``_outbox_rows``).

        ``hops``: for records relayed by a lower tier, record id → every earlier node's signature over it;
        each envelope carries them when the grant left its record unchanged (node/services/tiers.py)."""
        rows = self._outbox_rows(self._targets(uow, batch.resource_code, now), batch, fresh, now, hops)
        uow.exchange.add_outbox(rows, now)
        return len(rows)

    def _targets(self, uow: UnitOfWork, resource_code: str, now: dt.datetime) -> list[tuple[Subscription, Platform, Grant]]:
        """Each live subscription to the resource with its platform and the grant that decides its view."""
        targets = []
        for subscription in uow.exchange.subscriptions_for(resource_code):
            platform = self.platforms.get(subscription.platform)
            grants = [g for g in uow.lists.grants_for(subscription.consumer_code, resource_code) if g.live(now)]
            if platform is not None and grants:
                targets.append((subscription, platform, max(grants, key=lambda g: g.expires_at)))
        return targets

    def _outbox_rows(self, targets: Sequence[tuple[Subscription, Platform, Grant]], batch: IncomingBatch,
                     fresh: Sequence[Record], now: dt.datetime,
                     hops: Mapping[str, Sequence[envelopes.Hop]] | None = None) -> list[dict]:
        """Per target: the records masked per its grant, sealed with the node's signature, one encoded
        one-record envelope each (``pack``)."""
        rows = []
        for subscription, platform, grant in targets:
            records = envelopes.masked(fresh, grant.items, grant.masking)
            parts = envelopes.seal_split(
                batch_id=batch.batch_id, node_id=self.node_id, provider_code=batch.provider_code,
                resource_code=batch.resource_code, consumer_code=subscription.consumer_code, records=records,
                signer=self.keys.active, now=now, checked=True)
            signed = parts[0].signed
            if hops:
                parts = [envelopes.with_hops(part, hops.get(part.records[0].id, ())) if part.records[0] == original
                         else part for part, original in zip(parts, fresh, strict=True)]
            codec = codec_for(platform.kind)
            headers = {
                "x-exnode-batch-id": batch.batch_id, "x-exnode-resource": batch.resource_code,
                "x-exnode-provider": batch.provider_code, "x-exnode-consumer": subscription.consumer_code,
                "x-exnode-node": self.node_id, "x-exnode-kid": signed.kid,
                "x-exnode-signature": signed.signature.hex(), "x-exnode-merkle-root": signed.root.hex(),
                "x-exnode-record-count": str(len(records)),
            }
            body = pack([(part.records[0].id, codec.encode(part, checked=True)) for part in parts])
            rows.append({"batch_id": batch.batch_id, "platform": platform.name, "queue": platform.queue,
                         "consumer_code": subscription.consumer_code, "content_type": codec.CONTENT_TYPE,
                         "headers": headers, "body": body})
        return rows

    # -- subscriptions ----------------------------------------------------------------------------------
    def subscribe(self, principal: Principal, resource_code: str, platform_name: str) -> tuple[Subscription, str]:
        """A consumer's platform queue for a resource it holds a grant for; records ingested from now on
        are relayed to it. Returns the subscription and its queue name."""
        platform = self.platforms.get(platform_name)
        if platform is None:
            known = ", ".join(sorted(self.platforms)) or "none configured"
            raise InvalidField.one("platform", f"unknown platform {platform_name!r} (known: {known})")
        if platform.consumer_code != principal.department_code and not principal.has(SYSTEM_ROLE):
            raise PermissionDenied(Action.EXCHANGE_SUBSCRIBE, Target("platform", platform_name),
                                   f"platform {platform_name} receives for department {platform.consumer_code}, "
                                   f"not {principal.department_code}")
        self.policy.require(principal, Action.EXCHANGE_SUBSCRIBE, Target("resource", resource_code))
        with self.uow(write=True) as uow:
            grants = [g for g in uow.lists.grants_for(principal.department_code, resource_code) if g.live(self.clock())]
            if not grants:
                raise PermissionDenied(Action.EXCHANGE_SUBSCRIBE, Target("resource", resource_code),
                                       f"department {principal.department_code} holds no live grant for {resource_code}")
            subscription = Subscription(principal.department_code, resource_code, platform_name, grants[0].id)
            if self.declare_queue is not None:
                try:
                    self.declare_queue(platform.queue)
                except Exception as error:
                    raise BrokerUnavailable(f"cannot declare queue {platform.queue}: {error}") from None
            uow.exchange.put_subscription(subscription, self.clock())
            uow.commit()
        return subscription, platform.queue

    def receipt(self, principal: Principal, batch_id: str, receiver_code: str, record_ids: Sequence[str], kid: str,
                signature: bytes) -> bool:
        """A receiver's signed receipt for (part of) a batch it was sent. Returns False for a repeat."""
        if receiver_code != principal.department_code:
            raise PermissionDenied(Action.EXCHANGE_SUBSCRIBE, Target("batch", batch_id),
                                   f"a receipt of department {receiver_code} is sent by that department, not "
                                   f"{principal.department_code}")
        now = self.clock()
        with self.uow(write=True) as uow:
            repo = uow.exchange
            if repo.get_batch(batch_id) is None:
                raise NotFound("batch", batch_id)
            if receiver_code not in repo.batch_consumers(batch_id):
                raise PermissionDenied(Action.EXCHANGE_SUBSCRIBE, Target("batch", batch_id),
                                       f"batch {batch_id} was not sent to department {receiver_code}")
            unknown = sorted(set(record_ids) - repo.batch_record_ids(batch_id))
            if not record_ids or unknown:
                raise InvalidField.one("record_ids", "name the batch's records you received"
                                       + (f"; not in batch {batch_id}: {', '.join(unknown[:5])}" if unknown else ""))
            key = repo.get_key(kid)
            if key is None or key.department_code != receiver_code or key.revoked_at is not None:
                raise BadSignature(f"key_id: {kid!r} is not a live registered key of department {receiver_code}")
            message = receipt_message(self.node_id, batch_id, receiver_code, record_ids)
            if not PublicKey(key.kid, key.algorithm, key.public_pem, "").verify(message, signature):
                raise BadSignature(f"signature: the receipt does not verify with key {kid}")
            fresh = repo.add_receipt(batch_id, receiver_code, len(set(record_ids)), kid, signature, now)
            uow.commit()
        return fresh

    def delivery_status(self, principal: Principal, batch_id: str) -> tuple[StoredBatch, list[tuple[str, str, int, str]]]:
        with self.uow() as uow:
            stored = uow.exchange.get_batch(batch_id)
            if stored is None:
                raise NotFound("batch", batch_id)
            states = uow.exchange.batch_states(batch_id)
            receipted = uow.exchange.receivers(batch_id)
        states = [(p, "RECEIPTED" if s == "CONFIRMED" and c in receipted else s, a, e) for p, s, a, e, c in states]
        if stored.provider_code != principal.department_code and not principal.has(SYSTEM_ROLE):
            raise PermissionDenied(Action.EXCHANGE_INGEST, Target("batch", batch_id),
                                   f"batch {batch_id} belongs to department {stored.provider_code}")
        return stored, states


def _targets_key(targets: Sequence[tuple[Subscription, Platform, Grant]]) -> tuple:
    """What decides the outbox rows of a batch: who subscribes, where, under which grant and masking."""
    return tuple((s.consumer_code, s.platform, p.kind, p.queue, g.id, tuple(g.items), tuple(sorted(g.masking.items())))
                 for s, p, g in targets)


def _sequence_check(last: int, fresh: Sequence[Record]) -> tuple[list[str], list[FieldProblem]]:
    """Sequences must rise above what was stored; gaps are accepted and reported (a provider may skip
    numbers it never sends), going backwards is refused."""
    gaps: list[str] = []
    problems: list[FieldProblem] = []
    expected = last + 1
    for index, record in enumerate(sorted(fresh, key=lambda r: r.sequence)):
        if record.sequence < expected:
            problems.append(FieldProblem(f"records[{index}].sequence", f"{record.sequence} is not after the last "
                                                                     f"stored sequence {expected - 1}"))
            continue
        if record.sequence > expected:
            gaps.append(f"{expected}-{record.sequence - 1}" if record.sequence - 1 > expected else str(expected))
        expected = record.sequence + 1
    return gaps, problems


def receipt_message(node_id: str, batch_id: str, receiver_code: str, record_ids: Sequence[str]) -> bytes:
    """What a receiver signs: this node, the batch, itself and the record ids it received."""
    document = {"node": node_id, "batch_id": batch_id, "receiver": receiver_code, "records": sorted(set(record_ids))}
    return b"exnode-receipt/1\n" + json.dumps(document, ensure_ascii=False, sort_keys=True,
                                                separators=(",", ":")).encode("utf-8")


def new_batch_id() -> str:
    return uuid.uuid4().hex


def provider_batch(provider_code: str, resource_code: str, records: Sequence[Record],
                   signer: merkle.BatchSigner, *,
                   batch_id: str | None = None) -> IncomingBatch:
    """What a provider sends: the records, their Merkle root and its signature (used by tests, the bench
    and the reference client)."""
    tree = merkle.MerkleTree.from_leaves(batch_leaves(provider_code, resource_code, records))
    signature = signer.sign(merkle.SignedBatch.signing_input(tree.size, tree.root))
    return IncomingBatch(batch_id or new_batch_id(), provider_code, resource_code, tuple(records), tree.root,
                         signer.kid, signature)



REFUSALS = (InvalidField, BadSignature, PermissionDenied, NotFound, RequestTooLarge, AlreadyExists)


def inbound_handler(app: ExchangeApplication) -> Callable[[envelopes.Envelope, str], None]:
    """What the inbound consumer does with one envelope: the same checks and transaction as gRPC ingest,
    with the provider's signature standing for its identity (no token travels on AMQP). A refusal
    becomes a dead letter whose reason names the check, and is audited."""
    from adapters.inbound import Poison

    def handle(envelope: envelopes.Envelope, source: str) -> None:
        principal = Principal(subject=f"platform:{source or 'inbound'}", department_code=envelope.provider_code,
                              roles=frozenset({"platform"}))
        batch = IncomingBatch(envelope.batch_id, envelope.provider_code, envelope.resource_code,
                              tuple(envelope.records), envelope.signed.root, envelope.signed.kid,
                              envelope.signed.signature)
        try:
            app.ingest(principal, batch)
        except AlreadyExists:
            return  # a platform re-sent a batch the node already has: nothing to do, ack it
        except REFUSALS as error:
            reason = f"{type(error).__name__}: {error}"
            app.audit_writer.append([AuditRecord(
                at=app.clock(), request_id=envelope.batch_id, subject=principal.subject,
                department_code=principal.department_code, roles=("platform",), action="inbound/dead-letter",
                target=f"resource:{envelope.resource_code}", result="REFUSED", detail=reason[:2000])])
            raise Poison(reason) from None

    return handle
