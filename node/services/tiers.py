"""Three tiers (department → region → ministry): what a node does with what a lower node relays to it,
and what it sends upward of its own catalog.

The link itself is RabbitMQ's shovel (``exnode tier link``): a lower node relays to a platform of kind
``node`` whose queue the shovel moves into the upper node's inbound queue. Nothing here forwards messages
between brokers.

Records from a peer are one-record envelopes signed by that peer (and carrying the earlier hops). The upper
node checks every signature against the peers' published keys (``<data>/peers/*.json``), checks the record
against the resource's items *as published* (a lower tier's resource is known here through the catalog
entries it sent upward), and stores the messages of one (sender, batch) in ONE transaction: records, the
provenance of each (every hop's signature), its audit entry and the outbox rows for its own subscribers.
Record ids make it idempotent: a record already stored with the same content is a duplicate (acked, nothing
changes), with other content a conflict (dead-lettered). Sequence order is not enforced again (the origin
node enforced it; messages of one batch may arrive in several groups, and a redelivery after a crash
arrives late): gaps are the origin's business.

Masking across hops: the origin node masks per the grant the upper node's department holds there, and
signs what it sends. An intermediate node relays the record unchanged, keeping the earlier hops, when its
own grant for the next node leaves the record as it is (the usual case: the ministry is granted at the
region no more than the region was granted at the department). If its grant masks further, the record it
sends is another record: the earlier signatures cannot cover it, so the hops are left off and only its own
signature vouches for it (the audit detail says so).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update

from adapters.codecs import envelope as envelopes
from adapters.codecs import relay
from adapters.codecs.envelope import Envelope, EnvelopeError, Hop, TrustedKeys
from adapters.platforms import Platform
from adapters.rabbit.inbound import Later
from catalog.errors import InvalidField
from catalog.interchange import metadata_from_dict, metadata_to_dict
from catalog.model import Resource, ResourceStatus, ResourceVersion, VersionState
from catalog.records import Operation, Record, canonical_record
from node.services.exchange import ExchangeApplication, IncomingBatch
from node.storage.exchange_repository import StoredBatch
from node.storage.tables import records as records_table
from node.storage.tables import relayed_records, tier_cursors
from security.audit import AuditRecord
from security.keys import KeyError_, read_public_keys
from security.merkle import Proof, SignedBatch

log = logging.getLogger(__name__)

UPWARD_EVENTS = ("PUBLISHED", "RETIRED")
WAIT_FOR_ENTRY_DELIVERIES = 20
"""How often a record whose resource is unknown here is requeued (the entry comes up by the catalog uplink,
polled each second, so a record ingested right after the resource was published may overtake it) before it
is dead-lettered."""
"""Catalog events a lower node sends upward; drafts stay with their department."""


class PeerConfigError(ValueError):
    """A peers directory entry that cannot be read; the message names the file."""


def load_peers(directory: Path) -> dict[str, dict[str, Any]]:
    """node id → (kid → public key) from every ``*.json`` in ``directory`` (each a ``public-keys.json`` that
    a lower node's ``exnode init`` / ``exnode keys`` wrote). No directory: no peers."""
    peers: dict[str, dict[str, Any]] = {}
    if not directory.is_dir():
        return peers
    for path in sorted(directory.glob("*.json")):
        try:
            node_id = json.loads(path.read_text(encoding="utf-8"))["node_id"]
            keys = read_public_keys(path)
        except (OSError, ValueError, KeyError, TypeError, KeyError_) as error:
            raise PeerConfigError(f"{path}: not a public-keys.json of a node: {error}") from None
        if not isinstance(node_id, str) or not node_id:
            raise PeerConfigError(f"{path}: node_id must be a non-empty string")
        peers.setdefault(node_id, {}).update(keys)
    return peers


def hop_to_dict(hop: Hop) -> dict[str, Any]:
    return {"node_id": hop.node_id, "batch_id": hop.batch_id, "signed": hop.signed.to_dict(),
            "proof": hop.proof.to_dict()}


def hop_from_dict(data: dict[str, Any]) -> Hop:
    return Hop(data["node_id"], data["batch_id"], SignedBatch.from_dict(data["signed"]), Proof.from_dict(data["proof"]))


@dataclass(frozen=True)
class Message:
    """One message of the inbound queue that belongs to the tier link (relayed record or catalog entry)."""

    content_type: str
    body: bytes
    deliveries: int = 0
    """Earlier deliveries of the message (a record waiting for its resource's catalog entry is retried)."""


@dataclass
class ChainReport:
    records: int = 0
    verified: int = 0
    hops: int = 0
    problems: list[str] | None = None


class TierApplication:
    """The upper side (relayed records, foreign catalog entries) and the lower side (catalog uplink)."""

    def __init__(self, exchange: ExchangeApplication, peers: TrustedKeys, platforms: Sequence[Platform]) -> None:
        self.exchange = exchange
        self.uow = exchange.uow
        self.node_id = exchange.node_id
        self.peers = peers
        self.upward = [p for p in platforms if p.kind == "node"]

    # -- upper side ---------------------------------------------------------------------------------------
    def accept(self, messages: Sequence[Message]) -> list[str | None]:
        """For each message, None (stored, or a duplicate) or why it can never be accepted (dead letter).

        Messages are grouped by (sender, batch); each group is one transaction. An exception (the database
        is down) leaves every message unacknowledged for redelivery."""
        results: list[str | None] = [None] * len(messages)
        groups: dict[tuple[str, str], list[tuple[int, Envelope]]] = defaultdict(list)
        catalog: list[tuple[int, bytes]] = []
        for index, message in enumerate(messages):
            if message.content_type == relay.CATALOG_CONTENT_TYPE:
                catalog.append((index, message.body))
                continue
            try:
                envelope = relay.decode(message.body)
            except EnvelopeError as error:
                results[index] = f"undecodable relayed envelope: {error}"
                continue
            groups[(envelope.node_id, envelope.batch_id)].append((index, envelope))
        for index, body in catalog:  # entries first: records of a resource may follow its entry closely
            results[index] = self._catalog_entry(body)
        verified: envelopes.Verified = set()
        for group in groups.values():
            for index, problem in zip([i for i, _ in group], self._records([e for _, e in group], verified),
                                      strict=True):
                if problem is not None and problem.startswith("NotFound: resource") \
                        and messages[index].deliveries < WAIT_FOR_ENTRY_DELIVERIES:
                    problem = Later(problem)
                results[index] = problem
        return results

    def _records(self, group: Sequence[Envelope], verified: envelopes.Verified) -> list[str | None]:
        results: list[str | None] = [None] * len(group)
        first = group[0]
        with self.uow() as uow:
            resource = uow.catalog.get(first.resource_code)
        items = {item.name for item in resource.latest.metadata.items} if resource else set()
        resource_problem = self._resource_problem(resource, first)
        checked: list[tuple[int, Envelope, bytes]] = []
        for index, envelope in enumerate(group):
            if envelope.proof is None or len(envelope.records) != 1:
                results[index] = "a relayed envelope holds one record with its inclusion proof"
                continue
            problems = envelopes.verify_chain(envelope, self.peers, verified)
            if not problems and envelope.node_id == self.node_id:
                problems = [f"node_id: {envelope.node_id} is this node (a relay loop)"]
            if problems:
                results[index] = "BadSignature: " + "; ".join(problems)
                continue
            if resource_problem:
                results[index] = resource_problem
                continue
            record = envelope.records[0]
            unknown = sorted(set(record.payload) - items)
            if unknown:
                results[index] = (f"InvalidField: records[0].payload: {', '.join(unknown)} not items of "
                                  f"{first.resource_code} as published")
                continue
            checked.append((index, envelope, envelopes.leaves(envelope)[0]))
        if checked:
            for index, problem in self._store(first, checked).items():
                results[index] = problem
        return results

    def _resource_problem(self, resource: Resource | None, envelope: Envelope) -> str | None:
        if resource is None:
            return (f"NotFound: resource {envelope.resource_code} is not in this node's catalog (its catalog "
                    f"entry has not come up from node {envelope.node_id})")
        if resource.provider_code != envelope.provider_code:
            return (f"PermissionDenied: department {envelope.provider_code} is not responsible for "
                    f"{envelope.resource_code} (its provider is {resource.provider_code})")
        if resource.status is not ResourceStatus.PUBLISHED:
            return f"InvalidField: resource_code: {envelope.resource_code} is {resource.status.value}"
        return None

    def _store(self, first: Envelope, checked: Sequence[tuple[int, Envelope, bytes]]) -> dict[int, str]:
        app = self.exchange
        now = app.clock()
        provider, resource_code = first.provider_code, first.resource_code
        problems: dict[int, str] = {}
        batch_id = f"r{uuid.uuid4().hex}"
        with self.uow(write=True) as uow:
            stored = uow.exchange.content_hashes(provider, resource_code, [e.records[0].id for _, e, _ in checked])
            fresh: list[tuple[Record, bytes]] = []
            chains: dict[str, tuple[Hop, ...]] = {}
            duplicates = 0
            for index, envelope, leaf in checked:
                record = envelope.records[0]
                digest = hashlib.sha256(leaf).digest()
                known = stored.get(record.id)
                if known is not None:
                    if known != digest.hex():
                        problems[index] = (f"InvalidField: records[0].id: {record.id} was already received with "
                                           "other content")
                    else:
                        duplicates += 1
                    continue
                stored[record.id] = digest.hex()
                fresh.append((record, digest))
                chains[record.id] = (*envelope.hops, envelopes.as_hop(envelope))
            if fresh:
                uow.exchange.add_records(provider, resource_code, batch_id, fresh, now)
                uow.exchange.add_batch(StoredBatch(batch_id, provider, resource_code, len(fresh), first.signed.root,
                                                   first.signed.kid, now, []), first.signed.signature)
                uow.connection.execute(insert(relayed_records), [
                    {"provider_code": provider, "resource_code": resource_code, "record_id": record.id,
                     "sender_node": first.node_id, "sender_batch_id": first.batch_id,
                     "hops": json.dumps([hop_to_dict(h) for h in chains[record.id]]), "received_at": now}
                    for record, _ in fresh])
                incoming = IncomingBatch(batch_id, provider, resource_code, tuple(r for r, _ in fresh),
                                         first.signed.root, first.signed.kid, first.signed.signature)
                subscribers = app._outbox(uow, incoming, [r for r, _ in fresh], now, hops=chains)
                uow.lists.add_delivery(provider, resource_code, "", now, batch_id, len(fresh))
            else:
                subscribers = 0
            app.audit_writer.append_in(uow.connection, [AuditRecord(
                at=now, request_id=batch_id, subject=f"node:{first.node_id}", department_code=provider,
                roles=("platform",), action="tier/store-relayed", target=f"resource:{resource_code}", result="OK",
                detail=(f"from node {first.node_id} batch {first.batch_id}: {len(fresh)} records stored, "
                        f"{duplicates} duplicates, {len(problems)} refused, {subscribers} subscribers"))])
            uow.commit()
        if subscribers and app.on_outbox is not None:
            app.on_outbox()
        return problems

    def _catalog_entry(self, body: bytes) -> str | None:
        try:
            sender, entry = relay.decode_catalog_entry(body, self.peers)
            resource, origin, kind = _foreign_resource(entry, self.exchange.clock())
        except (relay.CatalogEntryError, InvalidField) as error:
            return f"catalog entry: {error}"
        if origin == self.node_id:
            return f"catalog entry: {resource.code} names this node as its origin (a relay loop)"
        now = self.exchange.clock()
        with self.uow(write=True) as uow:
            existing = uow.catalog.get(resource.code, for_update=True)
            if existing is not None and existing.origin_node != origin:
                owner = f"node {existing.origin_node}" if existing.origin_node else "this node"
                return f"catalog entry: {resource.code} from node {origin} is already a resource of {owner}"
            if uow.catalog.put_foreign(resource, origin, now):
                uow.catalog.append_events([(kind, resource)], now)
                self.exchange.audit_writer.append_in(uow.connection, [AuditRecord(
                    at=now, request_id=uuid.uuid4().hex, subject=f"node:{sender}", department_code="",
                    roles=("platform",), action="tier/catalog-entry", target=f"resource:{resource.code}",
                    result="OK", detail=f"{kind} version {resource.latest.version} of node {origin}, via {sender}")])
            uow.commit()
        return None

    def verify_chains(self) -> ChainReport:
        """Check, for every relayed record stored here, every hop's signature over the stored record."""
        report = ChainReport(problems=[])
        verified: envelopes.Verified = set()
        r, p = records_table.c, relayed_records.c
        query = select(r.provider_code, r.resource_code, r.record_id, r.sequence, r.operation, r.payload, p.hops) \
            .select_from(records_table.join(relayed_records, (r.provider_code == p.provider_code)
                                            & (r.resource_code == p.resource_code) & (r.record_id == p.record_id)))
        with self.uow() as uow:
            for row in uow.connection.execute(query):
                report.records += 1
                record = Record(row.record_id, row.sequence, Operation(row.operation), json.loads(row.payload))
                hops = [hop_from_dict(h) for h in json.loads(row.hops)]
                report.hops += len(hops)
                problems = envelopes.verify_hops(canonical_record(row.provider_code, row.resource_code, record),
                                                 hops, self.peers, verified)
                if problems:
                    assert report.problems is not None
                    report.problems.append(f"{row.resource_code} {row.record_id}: {'; '.join(problems)}")
                else:
                    report.verified += 1
        return report

    # -- lower side: the catalog uplink --------------------------------------------------------------------
    def catalog_upward(self, platform: str, limit: int = 200) -> tuple[list[tuple[str, bytes]], int]:
        """The next published/retired catalog entries for an upper-node platform, each (message id, signed
        body), and the event position they reach; ``advance`` it once the broker confirmed them."""
        signer = self.exchange.keys.active
        with self.uow() as uow:
            position = self._position(uow.connection, platform)
            events = uow.catalog.events_since(position, limit)
            out: list[tuple[str, bytes]] = []
            for event in events:
                position = event.sequence
                if event.kind not in UPWARD_EVENTS:
                    continue
                resource = uow.catalog.get(event.code)
                version = uow.catalog.get_version(event.code, resource.published_version or event.version) \
                    if resource else None
                if resource is None or version is None or version.state is not VersionState.PUBLISHED:
                    continue
                origin = resource.origin_node or self.node_id
                entry = {"origin_node": origin, "event": event.kind, "code": event.code, "version": version.version,
                         "published_at": version.published_at.isoformat() if version.published_at else "",
                         "retired_at": resource.retired_at.isoformat()
                         if event.kind == "RETIRED" and resource.retired_at else "",
                         "metadata": metadata_to_dict(version.metadata)}
                out.append((f"catalog:{origin}:{event.code}:{version.version}:{event.kind}",
                            relay.encode_catalog_entry(entry, self.node_id, signer)))
        return out, position

    def advance(self, platform: str, position: int) -> None:
        with self.uow(write=True) as uow:
            name = f"catalog:{platform}"
            c = tier_cursors.c
            if not uow.connection.execute(update(tier_cursors).where(c.name == name).values(position=position)).rowcount:
                uow.connection.execute(insert(tier_cursors).values(name=name, position=position))
            uow.commit()

    @staticmethod
    def _position(connection: Any, platform: str) -> int:
        c = tier_cursors.c
        value = connection.execute(select(c.position).where(c.name == f"catalog:{platform}")).scalar()
        return int(value or 0)


def _foreign_resource(entry: dict[str, Any], now: dt.datetime) -> tuple[Resource, str, str]:
    """The read-only resource an upward catalog entry describes, its origin node and the event kind."""
    try:
        origin, kind, code, version = entry["origin_node"], entry["event"], entry["code"], entry["version"]
        published_at = dt.datetime.fromisoformat(entry["published_at"]) if entry.get("published_at") else now
        retired_at = dt.datetime.fromisoformat(entry["retired_at"]) if entry.get("retired_at") else None
        metadata = metadata_from_dict(entry["metadata"])
    except (KeyError, TypeError, ValueError) as error:
        raise relay.CatalogEntryError(f"entry: {error}") from None
    if kind not in UPWARD_EVENTS or not isinstance(version, int) or version < 1 or not isinstance(origin, str) \
            or not origin or metadata.code != code:
        raise relay.CatalogEntryError(f"entry: {kind!r} version {version!r} of {code!r} from {origin!r} is not an "
                                      "upward catalog event")
    status = ResourceStatus.RETIRED if kind == "RETIRED" else ResourceStatus.PUBLISHED
    published = ResourceVersion(metadata, version, VersionState.PUBLISHED, published_at, published_at)
    return Resource(code, status, published, version, retired_at, origin_node=origin), origin, kind


Accept = Callable[[Sequence[Message]], list[str | None]]
