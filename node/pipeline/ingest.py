"""Ingest: a provider's signed batch from the request to the commit (DESIGN.md §4.3).

The checks, in order and each with its own error: identity, responsibility for the resource, size limits,
the payload against the resource's items, the provider's signature over the batch's Merkle root; then in
the store, duplicates / conflicts / sequence order against what is stored. Then ONE transaction stores the
records, the batch, its audit entry, the delivery that the responsibility list counts, and one outbox row
per subscriber (``node.pipeline.outbox``: masked per its grant, sealed with the node's signature, encoded
in its platform's format). Only then is the provider answered; the dispatcher relays the outbox to
RabbitMQ (``adapters.rabbit.Dispatcher`` draining ``SqlOutbox``).

gRPC ingest, the inbound queue (``node.pipeline.inbound``) and the tiers (``node.pipeline.tiers``) all
store through ``write_records``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from adapters.codecs import envelope as envelopes
from adapters.platforms import Platform
from catalog.claims import record_key
from catalog.errors import AlreadyExists, FieldProblem, InvalidField, NotFound
from catalog.model import Item, ResourceStatus
from catalog.records import Operation, PayloadSchema, Record, with_canonical
from node.pipeline import outbox, rules
from node.pipeline.batches import (
    CheckedBatch,
    IncomingBatch,
    IngestResult,
    Limits,
    PreparedOutbox,
    batch_leaves,
)
from node.services.audit import AuditWriter
from node.services.errors import BadSignature, OutboxFull, RequestTooLarge
from node.services.timestamps import Timestamps
from node.storage.exchange_repository import StoredBatch
from node.storage.record_index_repository import IndexEntry
from node.storage.unit_of_work import UnitOfWork, UnitOfWorkFactory
from security import merkle
from security.audit import AuditRecord
from security.identity import Principal
from security.keyed_hash import KeyHasher
from security.keys import PublicKey, SigningKey
from security.policy import Action, Policy, Target

Clock = Callable[[], dt.datetime]


class Ingest:
    """The record's path into the node, up to the commit that makes it the dispatcher's."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, policy: Policy, signer: SigningKey, node_id: str,
                 platforms: Sequence[Platform], audit_writer: AuditWriter, limits: Limits | None = None,
                 timestamps: Timestamps | None = None, key_hasher: KeyHasher | None = None) -> None:
        self.uow = uow
        self.clock = clock
        self.policy = policy
        self.signer = signer
        self.node_id = node_id
        self.platforms = {p.name: p for p in platforms}
        self.audit_writer = audit_writer
        self.limits = limits or Limits()
        self.timestamps = timestamps
        """With a TSA configured: each stored batch's Merkle root waits for its timestamp, and ingest is
        refused once the TSA has been out longer than the limit."""
        self._schemas: dict[tuple[Item, ...], PayloadSchema] = {}
        self._outbox_checked = (-1e9, False)
        """(monotonic time, over the bound) of the last look at the outbox's size: once a second at most."""
        self.key_hasher = key_hasher
        """HMAC of record keys for the current-record index (None: the index is not kept, as in old tests)."""
        self._key_items: dict[str, tuple[int | None, tuple[Item, ...]]] = {}
        self.on_outbox: Callable[[], None] | None = None
        """Called after a commit that wrote outbox rows: the dispatcher publishes them now, not at its next poll."""

    def ingest(self, principal: Principal, batch: IncomingBatch,
               joined: Callable[[UnitOfWork, IngestResult], None] | None = None) -> IngestResult:
        """Check the batch, then store it in one transaction; each refusal names its check."""
        return self.store(principal, self.check(principal, batch), joined)

    # -- the checks (no writes: a stream checks its next batch while the one before commits) ------------
    def check(self, principal: Principal, batch: IncomingBatch) -> CheckedBatch:
        # 1. identity: a provider (or its platform) of the department the batch is from.
        self.policy.require(principal, Action.EXCHANGE_INGEST, Target.department(batch.provider_code))
        if self.timestamps is not None:
            self.timestamps.require_fresh()
        if not batch.batch_id or len(batch.batch_id) > 64:
            raise InvalidField.one("batch_id", "is required, at most 64 characters")
        with self.uow() as uow:
            resource = uow.catalog.get(batch.resource_code)
        # 2. responsibility for the resource.
        if resource is None:
            raise NotFound("resource", batch.resource_code)
        self.policy.require(principal, Action.EXCHANGE_INGEST,
                            Target.resource(batch.resource_code, resource.provider_code, batch.provider_code))
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
        # serialised once (``with_canonical``): the Merkle leaves, their SHA-256 (each record's content hash)
        # and the stored row all come from that text.
        batch = replace(batch, records=tuple(with_canonical(record) for record in batch.records))
        leaves = batch_leaves(batch.provider_code, batch.resource_code, batch.records)
        self._check_signature(batch, leaves)
        now = self.clock()
        with self.uow() as uow:
            found = outbox.targets(uow, self.platforms, batch.resource_code, now)
        prepared = PreparedOutbox(outbox.targets_key(found), self._rows(found, batch, batch.records, now))
        return CheckedBatch(batch, tuple(hashlib.sha256(leaf).digest() for leaf in leaves), now, prepared)

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

    # -- the store: ONE transaction ---------------------------------------------------------------------
    def store(self, principal: Principal, checked: CheckedBatch,
              joined: Callable[[UnitOfWork, IngestResult], None] | None = None) -> IngestResult:
        """Step 6 and the transaction: duplicates and sequence order against what is stored, then the
        records, the batch, its audit entry and the outbox rows, committed together. ``joined`` adds the
        caller's writes to that transaction (the RPC's own audit entry): a store whose call cannot be
        audited (a full disk) then changes nothing, rather than storing and answering UNAVAILABLE."""
        batch, now = checked.batch, checked.now
        provider, resource_code = batch.provider_code, batch.resource_code
        self._refuse_when_outbox_full()
        with self.uow(write=True) as uow:
            previous = uow.exchange.get_batch(batch.batch_id)
            if previous is not None:
                raise AlreadyExists("batch", f"{batch.batch_id} (received {previous.received_at:%Y-%m-%d %H:%M:%S} UTC, "
                                             f"{previous.record_count} records); a replay changes nothing")
            stored = uow.exchange.content_hashes(provider, resource_code, [r.id for r in batch.records])
            found = rules.sort_fresh(batch.records, checked.hashes, stored)
            if found.conflicts:
                raise InvalidField(rules.conflict_problems(found.conflicts))
            gaps, order = rules.sequence_check(uow.exchange.last_sequence(provider, resource_code),
                                               [r for r, _ in found.fresh])
            if order:
                raise InvalidField(order)
            prepared = checked.outbox if len(found.fresh) == len(batch.records) else None
            subscribers = self.write_records(uow, batch, found.fresh, now, gaps=gaps, prepared=prepared, numbered=True)
            clear, withheld = outbox.unsealed(checked.outbox.targets)
            detail = (f"batch {batch.batch_id}: {len(found.fresh)} records stored, {found.duplicates} duplicates, "
                      f"{subscribers} subscribers" + (f"; sequence gaps {', '.join(gaps)}" if gaps else "")
                      + (f"; sent in clear (no encryption key registered; the grant allows it) to {', '.join(clear)}"
                         if clear and found.fresh else "")
                      + (f"; withheld from {', '.join(withheld)} (no encryption key registered; the grant does not "
                         "allow clear delivery)" if withheld and found.fresh else ""))
            self.audit_writer.append_in(uow, [AuditRecord(
                at=now, request_id=batch.batch_id, subject=principal.subject, department_code=principal.department_code,
                roles=tuple(sorted(principal.roles)), action="exchange/store-batch", target=f"resource:{resource_code}",
                result="OK", detail=detail)])
            result = IngestResult(batch.batch_id, len(found.fresh), found.duplicates, tuple(gaps), subscribers)
            if joined is not None:
                joined(uow, result)
            uow.commit()
        self.committed(subscribers)
        return result

    def _refuse_when_outbox_full(self) -> None:
        bound = self.limits.max_outbox_rows
        if bound <= 0:
            return
        checked_at, full = self._outbox_checked
        if time.monotonic() - checked_at >= 1.0:
            with self.uow() as uow:
                full = uow.exchange.pending_at_least(bound)
            self._outbox_checked = (time.monotonic(), full)
        if full:
            raise OutboxFull(f"the outbox holds {bound:,} or more undelivered messages (exchange.max_outbox_rows = "
                             f"{bound}): the broker is not taking them; retry when it drains")

    def write_records(self, uow: UnitOfWork, batch: IncomingBatch, fresh: Sequence[tuple[Record, bytes]],
                      now: dt.datetime, *, gaps: Sequence[str] = (), prepared: PreparedOutbox | None = None,
                      hops: Mapping[str, Sequence[envelopes.Hop]] | None = None, numbered: bool = False) -> int:
        """In the caller's transaction: the fresh records, the batch (also when nothing in it was new, so a
        replay of its id is recognised), and when there are fresh records the outbox rows of every live
        subscription and the provider's delivery (the responsibility list counts it). ``prepared`` rows
        are used if the subscriptions and grants are still those they were made for. Returns the number of
        subscribers.

        ``numbered``: the records get their pull positions now, so that the first pull after an ingest has
        nothing left to number. The sequencer's lock is taken here, after the store's reads, and held to
        commit (the audit chain's head is held from its append to commit as well: ingest commits were
        already serial there). Without it (records relayed from a lower tier) the sequencer numbers them
        when a pull starts."""
        provider, resource_code = batch.provider_code, batch.resource_code
        first_position = uow.pull.claim_positions() if numbered and fresh else None
        uow.exchange.add_records(provider, resource_code, batch.batch_id, fresh, now, first_position=first_position)
        uow.exchange.add_batch(StoredBatch(batch.batch_id, provider, resource_code, len(fresh), batch.merkle_root,
                                           batch.kid, now, list(gaps)), batch.signature)
        if not fresh:
            return 0
        if self.timestamps is not None:
            uow.timestamps.add_pending("batch", batch.batch_id, batch.merkle_root, now)
        self.index_records(uow, provider, resource_code, [r for r, _ in fresh], now)
        found = outbox.targets(uow, self.platforms, resource_code, now)
        if prepared is not None and prepared.targets == outbox.targets_key(found) and hops is None:
            rows = prepared.rows
        else:  # duplicates left out, or a subscription or grant changed since the check
            rows = self._rows(found, batch, [r for r, _ in fresh], now, hops)
        uow.exchange.add_outbox(rows, now)
        uow.lists.add_delivery(provider, resource_code, "", now, batch.batch_id, len(fresh))
        return len(rows)

    def index_records(self, uow: UnitOfWork, provider: str, resource_code: str, fresh: Sequence[Record],
                      now: dt.datetime) -> None:
        """In the records' transaction: the current-record index of a keyed resource. An UPSERT makes its
        record the key's current one; a DELETE removes the key it carries in its payload or, without one,
        the index entries of the record its id names. Applied in sequence order within the batch."""
        if self.key_hasher is None:
            return
        items = self._keyed(uow, resource_code)
        if not items:
            return
        upserts: list[IndexEntry] = []
        removals: list[tuple[str, int]] = []
        by_id: list[str] = []
        for record in sorted(fresh, key=lambda r: r.sequence):
            key = record_key(items, record.payload) if record.payload else None
            if record.operation is Operation.UPSERT:
                if key is not None:
                    upserts.append(IndexEntry(self.key_hasher(key), provider, record.id, record.sequence))
            elif key is not None:
                digest = self.key_hasher(key)
                upserts = [e for e in upserts if e.key_hash != digest]
                removals.append((digest, record.sequence))
            else:
                by_id.append(record.id)
        if removals:
            uow.record_index.remove(resource_code, removals)
        if by_id:
            uow.record_index.remove_records(provider, resource_code, by_id)
        uow.record_index.put(resource_code, upserts, now)

    def _keyed(self, uow: UnitOfWork, resource_code: str) -> tuple[Item, ...]:
        """The key items of the resource's published version; cached per version (one cheap read a batch)."""
        version = uow.record_index.published_version(resource_code)
        cached = self._key_items.get(resource_code)
        if cached is not None and cached[0] == version:
            return cached[1]
        published = uow.catalog.get_version(resource_code, version) if version is not None else None
        items = published.metadata.key_items if published is not None else ()
        if len(self._key_items) >= 1024:
            self._key_items.clear()
        self._key_items[resource_code] = (version, items)
        return items

    def committed(self, subscribers: int) -> None:
        """After a commit: wake the dispatcher if the commit wrote outbox rows."""
        if subscribers and self.on_outbox is not None:
            self.on_outbox()

    def relay_disputed(self, uow: UnitOfWork, provider_code: str, resource_code: str, record_id: str,
                       consumers: frozenset[str], notice_id: str, disputed: bool, now: dt.datetime, *,
                       served: bool | None = None) -> int:
        """In the caller's transaction (an objection raised or answered, here or at the lower node that relayed
        the record): outbox rows re-publishing the record to its subscribers with its disputed mark set or
        cleared (``served``: the mark when another objection keeps it), a signed notice to node platforms;
        the number of rows."""
        rows = outbox.disputed_rows(uow, self.platforms, provider_code, resource_code, record_id, consumers,
                                    notice_id, disputed, now, node_id=self.node_id, signer=self.signer,
                                    served=served)
        uow.exchange.add_outbox(rows, now)
        return len(rows)

    def _rows(self, found: Sequence[outbox.Target], batch: IncomingBatch, fresh: Sequence[Record], now: dt.datetime,
              hops: Mapping[str, Sequence[envelopes.Hop]] | None = None) -> list[dict]:
        return outbox.rows(found, batch, fresh, now, node_id=self.node_id, signer=self.signer, hops=hops)
