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

回流 (data returned downward): a lower node's department files its demand for a resource of the upper node
at its own node; the lower node forwards it through its uplink (a signed demand document on the upper-node
platform's queue, through the same shovel as records), the upper node files it for that department, its
reviewer decides there, and the decision comes down through the downward shovel (a lower_node platform). An
approval subscribes the downward platform for the department, so the records flow down signed and are
verified at every hop, and gives the lower node a grant of its own: the department then subscribes and
pulls at its own node like for any local resource.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from adapters.codecs import envelope as envelopes
from adapters.codecs import relay
from adapters.codecs.envelope import Envelope, EnvelopeError, Hop, TrustedKeys
from adapters.platforms import Platform
from adapters.rabbit.inbound import Later, Poison
from adapters.rabbit.wire import pack
from catalog import disputes as disputes_domain
from catalog import lists as lists_domain
from catalog import objections as objections_domain
from catalog.disputes import Dispute, DisputeState
from catalog.errors import CatalogError, InvalidField
from catalog.interchange import metadata_from_dict, metadata_to_dict
from catalog.lists import Demand, DemandRequest, DemandState, GrantKind
from catalog.model import Resource, ResourceStatus, ResourceVersion, VersionState
from catalog.objections import Objection, ObjectionState, RecordKey
from catalog.records import canonical_record
from node.config import ConfigError
from node.files import report as report_files
from node.pipeline import rules
from node.pipeline.batches import IncomingBatch
from node.pipeline.ingest import Ingest
from node.services.disputes import DisputesApplication
from node.services.lists import _new_id
from node.storage.exchange_repository import Subscription
from node.storage.tier_repository import PROVIDER, REQUESTER, ForwardedDemand, ForwardedObjection
from node.storage.unit_of_work import UnitOfWork
from security.audit import AuditRecord
from security.identity import Principal
from security.keys import UnusableKey, read_public_keys
from security.merkle import Proof, SignedBatch
from security.policy import Action, PermissionDenied, Target
from security.xml import XmlRejected

log = logging.getLogger(__name__)

UPWARD_EVENTS = ("PUBLISHED", "RETIRED")
WAIT_FOR_ENTRY_DELIVERIES = 20
"""How often a record whose resource is unknown here is requeued (the entry comes up by the catalog uplink,
polled each second, so a record ingested right after the resource was published may overtake it) before it
is dead-lettered."""
"""Catalog events a lower node sends upward; drafts stay with their department."""


class PeerConfigError(ConfigError):
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
        except (OSError, ValueError, KeyError, TypeError, UnusableKey) as error:
            raise PeerConfigError(f"{path}: not a public-keys.json of a node: {error}") from None
        if not isinstance(node_id, str) or not node_id:
            raise PeerConfigError(f"{path}: node_id must be a non-empty string")
        peers.setdefault(node_id, {}).update(keys)
    return peers


def load_peer_documents(directory: Path) -> dict[str, dict[str, Any]]:
    """node id → its public-keys.json document (``security.broker_sealing.load_peer_keys`` reads the
    encryption keys from them); ``load_peers`` has checked them."""
    documents: dict[str, dict[str, Any]] = {}
    if directory.is_dir():
        for path in sorted(directory.glob("*.json")):
            try:
                document = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:
                raise PeerConfigError(f"{path}: not a public-keys.json of a node: {error}") from None
            if isinstance(document, dict) and isinstance(document.get("node_id"), str):
                documents[document["node_id"]] = document
    return documents


def hop_to_dict(hop: Hop) -> dict[str, Any]:
    return {"node_id": hop.node_id, "batch_id": hop.batch_id, "signed": hop.signed.to_dict(),
            "proof": hop.proof.to_dict()}


def hop_from_dict(data: dict[str, Any]) -> Hop:
    return Hop(data["node_id"], data["batch_id"], SignedBatch.from_dict(data["signed"]), Proof.from_dict(data["proof"]))


class Unknown(Poison):
    """A relayed record whose resource this node does not know yet: poison only once its entry had time to
    come up (``WAIT_FOR_ENTRY_DELIVERIES``); until then the message is requeued."""


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

    def __init__(self, ingest: Ingest, peers: TrustedKeys, platforms: Sequence[Platform], lists: Any = None) -> None:
        self.ingest = ingest
        self.uow = ingest.uow
        self.node_id = ingest.node_id
        self.peers = peers
        self.upward = [p for p in platforms if p.kind == "node"]
        """Every node platform, upper and lower (回流): each gets the catalog entries it does not originate."""
        self.lists = lists
        """``node.services.lists.ListsApplication``: forwarded demands are filed and decided through it."""

    # -- upper side ---------------------------------------------------------------------------------------
    def accept(self, messages: Sequence[Message]) -> list[Poison | Later | None]:
        """For each message, None (stored, or a duplicate) or why it can never be accepted (dead letter).

        Messages are grouped by (sender, batch); each group is one transaction. An exception (the database
        is down) leaves every message unacknowledged for redelivery."""
        results: list[Poison | Later | None] = [None] * len(messages)
        groups: dict[tuple[str, str], list[tuple[int, Envelope]]] = defaultdict(list)
        catalog: list[tuple[int, bytes]] = []
        for index, message in enumerate(messages):
            if message.content_type == relay.CATALOG_CONTENT_TYPE:
                catalog.append((index, message.body))
                continue
            if message.content_type == relay.REPORT_CONTENT_TYPE:
                results[index] = self._report(message.body)
                continue
            if message.content_type == relay.DEMAND_CONTENT_TYPE:
                results[index] = self._forwarded_demand(message.body)
                continue
            if message.content_type == relay.DECISION_CONTENT_TYPE:
                results[index] = self._decision(message.body)
                continue
            if message.content_type == relay.DISPUTE_CONTENT_TYPE:
                results[index] = self._dispute(message.body)
                continue
            if message.content_type == relay.DEMAND_CHANGE_CONTENT_TYPE:
                results[index] = self._demand_change(message.body)
                continue
            if message.content_type == relay.DISPUTE_STEP_CONTENT_TYPE:
                results[index] = self._dispute_step(message.body)
                continue
            if message.content_type == relay.OBJECTION_CONTENT_TYPE:
                results[index] = self._objection(message.body)
                continue
            if message.content_type == relay.OBJECTION_ANSWER_CONTENT_TYPE:
                results[index] = self._objection_answer(message.body)
                continue
            try:
                envelope = relay.decode(message.body)
            except EnvelopeError as error:
                results[index] = Poison(f"undecodable relayed envelope: {error}")
                continue
            groups[(envelope.node_id, envelope.batch_id)].append((index, envelope))
        for index, body in catalog:  # entries first: records of a resource may follow its entry closely
            results[index] = self._catalog_entry(body)
        verified: envelopes.Verified = set()
        for group in groups.values():
            for index, problem in zip([i for i, _ in group], self._records([e for _, e in group], verified),
                                      strict=True):
                if isinstance(problem, Unknown):  # its catalog entry may still come up: wait, for a while
                    problem = Later(str(problem)) if messages[index].deliveries < WAIT_FOR_ENTRY_DELIVERIES \
                        else Poison(str(problem))
                results[index] = problem
        return results

    def _records(self, group: Sequence[Envelope], verified: envelopes.Verified) -> list[Poison | None]:
        results: list[Poison | None] = [None] * len(group)
        first = group[0]
        with self.uow() as uow:
            resource = uow.catalog.get(first.resource_code)
        items = {item.name for item in resource.latest.metadata.items} if resource else set()
        resource_problem = self._resource_problem(resource, first)
        checked: list[tuple[int, Envelope, bytes]] = []
        for index, envelope in enumerate(group):
            if envelope.proof is None or len(envelope.records) != 1:
                results[index] = Poison("a relayed envelope holds one record with its inclusion proof")
                continue
            problems = envelopes.verify_chain(envelope, self.peers, verified)
            if not problems and envelope.node_id == self.node_id:
                problems = [f"node_id: {envelope.node_id} is this node (a relay loop)"]
            if problems:
                results[index] = Poison("BadSignature: " + "; ".join(problems))
                continue
            if resource_problem:
                results[index] = resource_problem
                continue
            record = envelope.records[0]
            unknown = sorted(set(record.payload) - items)
            if unknown:
                results[index] = Poison(f"InvalidField: records[0].payload: {', '.join(unknown)} not items of "
                                        f"{first.resource_code} as published")
                continue
            checked.append((index, envelope, envelopes.leaves(envelope)[0]))
        if checked:
            for index, problem in self._store(first, checked).items():
                results[index] = problem
        return results

    def _resource_problem(self, resource: Resource | None, envelope: Envelope) -> Poison | None:
        if resource is None:
            return Unknown(f"NotFound: resource {envelope.resource_code} is not in this node's catalog (its catalog "
                    f"entry has not come up from node {envelope.node_id})")
        sender = Principal(subject=f"node:{envelope.node_id}", department_code=envelope.provider_code,
                           roles=frozenset({"platform"}))
        decision = self.ingest.policy.decide(sender, Action.EXCHANGE_INGEST, Target.resource(
            envelope.resource_code, resource.provider_code, envelope.provider_code))
        if not decision:
            return Poison(f"PermissionDenied: {decision.reason}")
        if resource.status is not ResourceStatus.PUBLISHED:
            return Poison(f"InvalidField: resource_code: {envelope.resource_code} is {resource.status.value}")
        return None

    def _store(self, first: Envelope, checked: Sequence[tuple[int, Envelope, bytes]]) -> dict[int, Poison]:
        """One (sender, batch)'s verified records in ONE transaction, through the pipeline's store: the new
        records with every hop's signature, the outbox rows for this node's subscribers, the audit entry.
        A record already stored with the same content is a duplicate; with other content it is refused."""
        ingest = self.ingest
        now = ingest.clock()
        provider, resource_code = first.provider_code, first.resource_code
        problems: dict[int, Poison] = {}
        batch_id = f"r{uuid.uuid4().hex}"
        records = [envelope.records[0] for _, envelope, _ in checked]
        hashes = [hashlib.sha256(leaf).digest() for _, _, leaf in checked]
        chains = {envelope.records[0].id: (*envelope.hops, envelopes.as_hop(envelope)) for _, envelope, _ in checked}
        with self.uow(write=True) as uow:
            stored = uow.exchange.content_hashes(provider, resource_code, [r.id for r in records])
            found = rules.sort_fresh(records, hashes, stored)
            for position, record in found.conflicts:
                problems[checked[position][0]] = Poison(f"InvalidField: records[0].id: {record.id} was already "
                                                        "received with other content")
            duplicates = found.duplicates - len(found.conflicts)
            subscribers = 0
            if found.fresh:
                incoming = IncomingBatch(batch_id, provider, resource_code, tuple(r for r, _ in found.fresh),
                                         first.signed.root, first.signed.kid, first.signed.signature)
                subscribers = ingest.write_records(uow, incoming, found.fresh, now, hops=chains)
                uow.tiers.add_relayed(provider, resource_code, first.node_id, first.batch_id,
                                      [(r.id, [hop_to_dict(h) for h in chains[r.id]]) for r, _ in found.fresh], now)
            ingest.audit_writer.append_in(uow, [AuditRecord(
                at=now, request_id=batch_id, subject=f"node:{first.node_id}", department_code=provider,
                roles=("platform",), action="tier/store-relayed", target=f"resource:{resource_code}", result="OK",
                detail=(f"from node {first.node_id} batch {first.batch_id}: {len(found.fresh)} records stored, "
                        f"{duplicates} duplicates, {len(problems)} refused, {subscribers} subscribers"))])
            uow.commit()
        ingest.committed(subscribers)
        return problems

    def _catalog_entry(self, body: bytes) -> Poison | None:
        try:
            sender, entry = relay.decode_catalog_entry(body, self.peers)
            resource, origin, kind = _foreign_resource(entry, self.ingest.clock())
        except (relay.CatalogEntryError, InvalidField) as error:
            return Poison(f"catalog entry: {error}")
        if origin == self.node_id:
            return Poison(f"catalog entry: {resource.code} names this node as its origin (a relay loop)")
        now = self.ingest.clock()
        with self.uow(write=True) as uow:
            existing = uow.catalog.get(resource.code, for_update=True)
            if existing is not None and existing.origin_node != origin:
                owner = f"node {existing.origin_node}" if existing.origin_node else "this node"
                return Poison(f"catalog entry: {resource.code} from node {origin} is already a resource of {owner}")
            if uow.catalog.put_foreign(resource, origin, now, via_node=sender):
                uow.catalog.append_events([(kind, resource)], now)
                self.ingest.audit_writer.append_in(uow, [AuditRecord(
                    at=now, request_id=uuid.uuid4().hex, subject=f"node:{sender}", department_code="",
                    roles=("platform",), action="tier/catalog-entry", target=f"resource:{resource.code}",
                    result="OK", detail=f"{kind} version {resource.latest.version} of node {origin}, via {sender}")])
            uow.commit()
        return None

    def _report(self, body: bytes) -> Poison | None:
        """A lower node's monthly report (统计月报): signed by a trusted peer, valid against report.xsd, of
        the sender itself; the newest of each (sender, month) is kept for the region's aggregate."""
        try:
            sender, entry = relay.decode_report(body, self.peers)
            month, xml, generated = entry["month"], entry["xml"], entry["generated"]
            report = report_files.from_xml(xml.encode("utf-8"), f"report of node {sender}")
        except (relay.CatalogEntryError, KeyError, TypeError, AttributeError, XmlRejected, ValueError) as error:
            return Poison(f"monthly report: {error}")
        if report.node_id != sender or report.month != month:
            return Poison(f"monthly report: node {report.node_id} month {report.month} sent by {sender} as {month}")
        now = self.ingest.clock()
        with self.uow(write=True) as uow:
            if uow.report.put_lower_report(sender, month, xml, generated, now):
                self.ingest.audit_writer.append_in(uow, [AuditRecord(
                    at=now, request_id=uuid.uuid4().hex, subject=f"node:{sender}", department_code="",
                    roles=("platform",), action="tier/monthly-report", target=f"report:{sender}:{month}",
                    result="OK", detail=f"{len(report.resources)} resources, {len(report.departments)} departments")])
            uow.commit()
        return None

    def _dispute(self, body: bytes) -> Poison | None:
        """A lower node's signed notice that an objection to a record it relayed here was raised (the record is
        disputed) or answered (the mark clears): applied only when a trusted peer signed it and that peer is
        the node the record came from; a change is passed on to this node's own subscribers (and further up)
        in the same transaction, and audited."""
        try:
            sender, entry = relay.decode_dispute(body, self.peers)
            provider, resource_code = str(entry["provider_code"]), str(entry["resource_code"])
            record_id, objection_id = str(entry["record_id"]), str(entry["objection_id"])
            disputed = entry["disputed"]
            if not isinstance(disputed, bool) or not record_id or not objection_id or len(objection_id) > 64:
                raise ValueError("disputed must be true or false, record_id and objection_id (at most 64) given")
        except (relay.CatalogEntryError, KeyError, TypeError, ValueError) as error:
            return Poison(f"dispute notice: {error}")
        now = self.ingest.clock()
        with self.uow(write=True) as uow:
            came_from = uow.tiers.sender_of(provider, resource_code, record_id)
            if came_from is None:
                return Poison(f"dispute notice: record {record_id} of {resource_code} was not relayed here by a "
                              f"lower node (node {sender} cannot mark it)")
            if came_from != sender:
                return Poison(f"dispute notice: record {record_id} of {resource_code} came from node {came_from}, "
                              f"not from node {sender}")
            if not uow.tiers.disputes.mark(provider, resource_code, record_id, objection_id, sender, disputed, now):
                return None  # a redelivery, or a replayed "raised" after the answer
            served = bool(uow.objections.disputed([(provider, resource_code, record_id)]))
            stored = uow.objections.record(RecordKey(provider, resource_code, record_id))
            delivered = uow.objections.delivered_to(stored) if stored else frozenset()
            published = self.ingest.relay_disputed(
                uow, provider, resource_code, record_id, delivered,
                f"{objection_id}.{'raised' if disputed else 'answered'}", disputed, now, served=served) \
                if delivered else 0
            self.ingest.audit_writer.append_in(uow, [AuditRecord(
                at=now, request_id=uuid.uuid4().hex, subject=f"node:{sender}", department_code=provider,
                roles=("platform",), action="tier/disputed-mark", target=f"record:{provider}/{resource_code}/{record_id}",
                result="OK", detail=(f"objection {objection_id} {'raised' if disputed else 'answered'} at node "
                                     f"{sender}: served {'disputed' if served else 'undisputed'}, re-sent to "
                                     f"{published} subscribers"))])
            uow.commit()
        self.ingest.committed(published)
        return None

    # -- 校核纠错: objections raised above to records whose provider is below ---------------------------------
    def forward_objection(self, uow: UnitOfWork, objection: Objection, now: dt.datetime) -> bool:
        """In the transaction that raised (or, at an intermediate node, filed) the objection: send it down the
        record's route, to the lower node it came through (each hop forwards toward the origin, whose
        provider checks it). False when no node platform leads there (the objection is then refused)."""
        key = objection.record
        origin, via = uow.catalog.route(key.resource_code)
        platform = next((p for p in self.upward if p.lower_node and p.lower_node == (via or origin)), None)
        if not origin or platform is None:
            return False
        document = {"objection_id": objection.id, "provider_code": key.provider_code,
                    "resource_code": key.resource_code, "record_id": key.record_id, "item": objection.item,
                    "raiser_code": objection.raiser_code, "raised_by": objection.raised_by,
                    "evidence": objection.evidence, "attachments": list(objection.attachments),
                    "raised_at": objection.created_at.isoformat()}
        body = relay.encode_objection(document, self.node_id, self.ingest.signer)
        # the lower node's id for it is not known yet: this node's own stands in (unique per peer)
        uow.tiers.objections.add(ForwardedObjection(objection.id, platform.lower_node, objection.id, REQUESTER,
                                                    platform.name), now)
        uow.exchange.add_outbox([self._row(platform, f"objection:{objection.id}", key.resource_code,
                                           relay.OBJECTION_CONTENT_TYPE, body)], now)
        self._audit_objection(uow, objection, "tier/objection-forwarded",
                              f"objection {objection.id} to record {key.record_id} of {key.resource_code} sent down "
                              f"to node {platform.lower_node} toward its provider at node {origin}", now)
        return True

    def objection_forwarded_to(self, uow: UnitOfWork, objection_id: str) -> str:
        """The lower node an objection raised (or passed on) here was sent down to, or "" when it is checked
        here."""
        forwarded = uow.tiers.objections.get(objection_id, REQUESTER)
        return forwarded.peer_node if forwarded else ""

    def objection_answered(self, uow: UnitOfWork, objection: Objection, now: dt.datetime) -> None:
        """In the answer's transaction: when an upper node sent the objection here, the answer goes up to it
        (and from there on up to the node where it was raised)."""
        forwarded = uow.tiers.objections.get(objection.id, PROVIDER)
        if forwarded is None:
            return
        platform = next((p for p in self.upward if p.name == forwarded.platform), None)
        if platform is None:
            log.error("objection %s: the platform %s of upper node %s is gone; its answer is not sent", objection.id,
                      forwarded.platform, forwarded.peer_node)
            return

        def at(value: dt.datetime | None) -> str:
            return value.isoformat() if value else ""

        document = {"objection_id": forwarded.peer_objection_id, "answered_objection_id": objection.id,
                    "state": objection.state.value, "answer": objection.answer, "answered_by": objection.answered_by,
                    "answered_at": at(objection.answered_at), "corrected_by": objection.corrected_by,
                    "deadline": at(objection.deadline), "escalated_at": at(objection.escalated_at)}
        body = relay.encode_objection_answer(document, self.node_id, self.ingest.signer)
        uow.exchange.add_outbox([self._row(platform, f"objection-answer:{forwarded.peer_objection_id}",
                                           objection.record.resource_code, relay.OBJECTION_ANSWER_CONTENT_TYPE,
                                           body)], now)
        self._audit_objection(uow, objection, "tier/objection-answer-sent",
                              f"objection {objection.id} {objection.state.value}: answer sent up to node "
                              f"{forwarded.peer_node} (there {forwarded.peer_objection_id})", now)

    def _objection(self, body: bytes) -> Poison | None:
        """Lower side: an objection an upper node's consumer raised to a record relayed up from here. Filed only
        when a trusted peer signed it and the record was delivered to that peer (its node platform); at the
        record's origin it is filed for the provider (the record is marked disputed here, and by the notice
        at every upper node), at an intermediate node kept and passed on down the route. Audited; what cannot
        be filed is dead-lettered naming why, and nothing is filed."""
        try:
            sender, entry = relay.decode_objection(body, self.peers)
            peer_id = str(entry["objection_id"])
            key = RecordKey(str(entry["provider_code"]), str(entry["resource_code"]), str(entry["record_id"]))
            item, raiser, by = str(entry.get("item", "")), str(entry["raiser_code"]), str(entry.get("raised_by", ""))
            evidence = str(entry.get("evidence", ""))
            attachments = tuple(str(a) for a in entry.get("attachments", []))
            if not peer_id or len(peer_id) > 64 or not key.record_id or not raiser or len(raiser) > 18:
                raise ValueError("objection_id (at most 64), record_id and raiser_code (at most 18) are required")
        except (relay.CatalogEntryError, KeyError, TypeError, ValueError) as error:
            return Poison(f"forwarded objection: {error}")
        if self.lists is None:
            return Poison("forwarded objection: this node files no objections from upper nodes")
        now = self.ingest.clock()
        published = 0
        with self.uow(write=True) as uow:
            if uow.tiers.objections.from_peer(sender, peer_id, PROVIDER) is not None:
                return None  # a redelivery: it was filed
            resource = uow.catalog.get(key.resource_code)
            stored = uow.objections.record(key) if resource else None
            delivered = uow.objections.delivered_to(stored) if stored else frozenset()
            platform = next((p for p in self.upward if p.upper_node == sender and p.consumer_code in delivered), None)
            if resource is None or stored is None or platform is None:
                return Poison(f"forwarded objection: record {key.record_id} of {key.resource_code} was not relayed "
                              f"from here to node {sender}")
            items = tuple(i.name for i in resource.latest.metadata.items)
            deadline = self.lists.calendar.add_working_days(now, self.lists.deadlines.objection_days)
            try:
                objection = objections_domain.raise_objection(
                    _new_id("YY", now), key, item, items, raiser, f"node:{sender}/{by}"[:200], evidence, attachments,
                    now, deadline)
            except CatalogError as error:
                return Poison(f"forwarded objection: objection {peer_id} of node {sender}: {error}")
            uow.objections.add(objection)
            uow.tiers.objections.add(ForwardedObjection(objection.id, sender, peer_id, PROVIDER, platform.name), now)
            origin, _ = uow.catalog.route(key.resource_code)
            if origin and not self.forward_objection(uow, objection, now):
                return Poison(f"forwarded objection: record {key.record_id} of {key.resource_code} came from node "
                              f"{origin} and no node platform leads there")
            published = self.ingest.relay_disputed(uow, key.provider_code, key.resource_code, key.record_id,
                                                   delivered, f"{objection.id}.raised", True, now)
            self._audit_objection(uow, objection, "tier/objection",
                                  f"objection {peer_id} of node {sender} to record {key.record_id} of "
                                  f"{key.resource_code} filed as {objection.id}"
                                  + (f", passed on toward node {origin}" if origin else " for its provider"), now)
            uow.commit()
        self.ingest.committed(published)
        return None

    def _objection_answer(self, body: bytes) -> Poison | None:
        """Upper side: the answer to an objection forwarded down from here, as the provider gave it at the
        record's origin; the objection here takes it (so the objector sees the outcome where it raised it),
        the mark clears for this node's subscribers, and it goes on up when an upper node sent it here."""
        try:
            sender, entry = relay.decode_objection_answer(body, self.peers)
            objection_id, state = str(entry["objection_id"]), ObjectionState(str(entry["state"]))
            if state is ObjectionState.OPEN:
                raise ValueError("state OPEN is not an answer")

            def at(name: str) -> dt.datetime | None:
                return dt.datetime.fromisoformat(entry[name]) if entry.get(name) else None

            answered_at, deadline, escalated_at = at("answered_at"), at("deadline"), at("escalated_at")
        except (relay.CatalogEntryError, KeyError, TypeError, ValueError) as error:
            return Poison(f"objection answer: {error}")
        now = self.ingest.clock()
        with self.uow(write=True) as uow:
            forwarded = uow.tiers.objections.get(objection_id, REQUESTER)
            if forwarded is None or forwarded.peer_node != sender:
                return Poison(f"objection answer: objection {objection_id} was not forwarded to node {sender}")
            objection = uow.objections.get(objection_id)
            if objection is None:
                return Poison(f"objection answer: objection {objection_id} is not here")
            if not objection.open:
                return None  # a redelivery
            by = str(entry.get("answered_by", ""))
            answered = replace(
                objection, state=state, answer=str(entry.get("answer", ""))[:10000],
                answered_by=f"node:{sender}/{by}"[:200], answered_at=answered_at or now,
                corrected_by=str(entry.get("corrected_by", ""))[:64], deadline=deadline or objection.deadline,
                escalated_at=escalated_at or objection.escalated_at, version=objection.version + 1)
            uow.objections.save(answered, objection.version)
            key = objection.record
            served = bool(uow.objections.disputed([(key.provider_code, key.resource_code, key.record_id)]))
            stored = uow.objections.record(key)
            delivered = uow.objections.delivered_to(stored) if stored else frozenset()
            published = self.ingest.relay_disputed(
                uow, key.provider_code, key.resource_code, key.record_id, delivered, f"{objection.id}.answered", False,
                now, served=served) if delivered else 0
            self.objection_answered(uow, answered, now)
            self._audit_objection(uow, answered, "tier/objection-answer",
                                  f"objection {objection.id}: {state.value} at node {sender} by {by} (there "
                                  f"{entry.get('answered_objection_id', '')})"
                                  + (f", corrected by record {answered.corrected_by}" if answered.corrected_by else ""),
                                  now)
            uow.commit()
        self.ingest.committed(published)
        return None

    def _audit_objection(self, uow: UnitOfWork, objection: Objection, action: str, detail: str,
                         now: dt.datetime) -> None:
        self.ingest.audit_writer.append_in(uow, [AuditRecord(
            at=now, request_id=uuid.uuid4().hex, subject=objection.raised_by, department_code=objection.raiser_code,
            roles=("consumer",), action=action, target=f"objection:{objection.id}", result="OK", detail=detail)])

    # -- 回流: demands across the link ----------------------------------------------------------------------
    def forward(self, uow: UnitOfWork, demand: Demand, resource: Resource, now: dt.datetime) -> bool:
        """Lower side, in the filing's transaction: forward a demand for a resource the upper node holds
        through the uplink: its own (the entry came down from it) or one that reached it from another region
        (the entry came down through it: the catalog's route names it as the next hop). False when no
        upper-node platform leads to the resource's node (the demand is then decided here, as before)."""
        origin, via = uow.catalog.route(resource.code)
        platform = next((p for p in self.upward if p.upper_node and p.upper_node == (via or origin)), None)
        if platform is None:
            return False
        request = demand.request
        document = {"demand_id": demand.id, "requester_code": request.requester_code,
                    "resource_code": request.resource_code, "items": list(request.items), "purpose": request.purpose,
                    "legal_basis": request.legal_basis, "contact": request.contact, "kind": request.kind.value,
                    "daily_quota": request.daily_quota, "description": request.description,
                    "filed_at": demand.created_at.isoformat()}
        body = relay.encode_demand(document, self.node_id, self.ingest.signer)
        # the upper node's id for it is not known yet: this node's own stands in, unique per peer (an empty one
        # let a node forward only one demand ever: (peer_node, peer_demand_id, side) is unique)
        uow.tiers.demands.add(ForwardedDemand(demand.id, platform.upper_node, demand.id, REQUESTER, platform.name), now)
        uow.exchange.add_outbox([self._row(platform, f"demand:{demand.id}", request.resource_code,
                                           relay.DEMAND_CONTENT_TYPE, body)], now)
        return True

    def forwarded_to(self, uow: UnitOfWork, demand_id: str) -> str:
        """The upper node that decides this node's demand, or "" when it is decided here."""
        forwarded = uow.tiers.demands.get(demand_id)
        return forwarded.peer_node if forwarded and forwarded.side == REQUESTER else ""

    def decided(self, uow: UnitOfWork, demand: Demand, now: dt.datetime) -> None:
        """Upper side, in the decision's transaction: when the demand came from a lower node, its answer goes
        down, and an approval (a copy grant) subscribes the downward platform for the department."""
        forwarded = uow.tiers.demands.get(demand.id)
        if forwarded is None or forwarded.side != PROVIDER:
            return
        if demand.state not in (DemandState.APPROVED, DemandState.REJECTED):
            return
        platform = next((p for p in self.upward if p.name == forwarded.platform), None)
        if platform is None:
            log.error("demand %s: the platform %s of lower node %s is gone; its answer is not sent", demand.id,
                      forwarded.platform, forwarded.peer_node)
            return
        self._answer_down(uow, platform, forwarded.peer_demand_id, demand.resource_code, demand.state.value,
                          demand.reason, demand.decided_by, now, upper_demand_id=demand.id,
                          grant=self._granted(uow, demand, platform, now))

    @staticmethod
    def _granted(uow: UnitOfWork, demand: Demand, platform: Platform, now: dt.datetime) -> dict[str, Any]:
        """The grant's terms for the lower node; a copy grant subscribes the downward platform for the
        department, so the records flow down."""
        grant = uow.lists.get_grant(demand.grant_id) if demand.grant_id else None
        if grant is None:
            return {}
        if grant.kind is GrantKind.COPY:
            uow.exchange.put_subscription(Subscription(demand.requester_code, demand.resource_code, platform.name,
                                                       grant.id), now)
        return {"id": grant.id, "items": list(grant.items), "expires_at": grant.expires_at.isoformat(),
                "kind": grant.kind.value, "daily_quota": grant.daily_quota}

    def changed(self, uow: UnitOfWork, demand: Demand, change: str, text: str, by: str, now: dt.datetime) -> None:
        """Lower side, in the change's transaction: the requester withdrew (WITHDRAW) or contested the refusal
        (CONTEST, ``text`` its duty basis) of a demand forwarded from here; the deciding node is told."""
        forwarded = uow.tiers.demands.get(demand.id)
        platform = next((p for p in self.upward if forwarded and p.name == forwarded.platform), None)
        if forwarded is None or platform is None:
            log.error("demand %s: no uplink platform to carry its %s up", demand.id, change)
            return
        body = relay.encode_demand_change({"demand_id": demand.id, "change": change, "text": text, "by": by,
                                           "at": now.isoformat()}, self.node_id, self.ingest.signer)
        uow.exchange.add_outbox([self._row(platform, f"change:{demand.id}:{change}", demand.resource_code,
                                           relay.DEMAND_CHANGE_CONTENT_TYPE, body)], now)

    def dispute_step(self, uow: UnitOfWork, dispute: Dispute, demand: Demand, now: dt.datetime) -> None:
        """Upper side, in the step's transaction: the provider's answer or the coordinator's decision in the
        dispute of a demand a lower node forwarded here goes down, with the demand's outcome and grant."""
        forwarded = uow.tiers.demands.get(demand.id)
        if forwarded is None or forwarded.side != PROVIDER:
            return
        platform = next((p for p in self.upward if p.name == forwarded.platform), None)
        if platform is None:
            log.error("dispute %s: the platform %s of lower node %s is gone; its step is not sent", dispute.id,
                      forwarded.platform, forwarded.peer_node)
            return
        terms = self._granted(uow, demand, platform, now) if demand.state is DemandState.APPROVED else {}

        def at(value: dt.datetime | None) -> str:
            return value.isoformat() if value else ""

        document = {"demand_id": forwarded.peer_demand_id, "dispute_id": dispute.id, "state": dispute.state.value,
                    "provider_answer": dispute.provider_answer, "provider_by": dispute.provider_by,
                    "provider_at": at(dispute.provider_at), "decision_reason": dispute.decision_reason,
                    "conditions": dispute.conditions, "decided_by": dispute.decided_by,
                    "decided_at": at(dispute.decided_at), "escalated_at": at(dispute.escalated_at),
                    "demand_state": demand.state.value, "grant": terms}
        body = relay.encode_dispute_step(document, self.node_id, self.ingest.signer)
        uow.exchange.add_outbox([self._row(platform, f"dispute:{forwarded.peer_demand_id}:{dispute.state.value}",
                                           demand.resource_code, relay.DISPUTE_STEP_CONTENT_TYPE, body)], now)

    def _answer_down(self, uow: UnitOfWork, platform: Platform, lower_demand_id: str, resource_code: str, state: str,
                     reason: str, decided_by: str, now: dt.datetime, *, upper_demand_id: str = "",
                     grant: dict[str, Any] | None = None) -> None:
        document = {"demand_id": lower_demand_id, "upper_demand_id": upper_demand_id, "state": state,
                    "reason": reason, "decided_by": decided_by, "decided_at": now.isoformat(), "grant": grant or {}}
        body = relay.encode_decision(document, self.node_id, self.ingest.signer)
        uow.exchange.add_outbox([self._row(platform, f"decision:{lower_demand_id}", resource_code,
                                           relay.DECISION_CONTENT_TYPE, body)], now)

    def _row(self, platform: Platform, message_id: str, resource_code: str, content_type: str, body: bytes) -> dict:
        """An outbox row of one signed document for a node platform: published with the records' confirms and
        retries, in the transaction that decided to send it."""
        return {"batch_id": message_id[:64], "platform": platform.name, "queue": platform.queue,
                "consumer_code": platform.consumer_code, "content_type": content_type,
                "headers": {"x-exnode-node": self.node_id, "x-exnode-resource": resource_code},
                "body": pack([(message_id, body)])}

    def _forwarded_demand(self, body: bytes) -> Poison | None:
        """Upper side: a lower node's forwarded demand, filed here for its department (once per demand);
        the rules apply as to any demand (不予共享 is refused citing the rule), and a refusal to file it
        (an unknown item) goes down as a rejection naming the problem."""
        try:
            sender, entry = relay.decode_demand(body, self.peers)
            lower_id = str(entry["demand_id"])
            request = DemandRequest(
                str(entry["requester_code"]), str(entry["resource_code"]), str(entry.get("description", "")),
                tuple(str(i) for i in entry.get("items", [])), str(entry.get("purpose", "")),
                str(entry.get("legal_basis", "")), contact=str(entry.get("contact", "")),
                kind=GrantKind(str(entry.get("kind", "COPY"))), daily_quota=int(entry.get("daily_quota", 0)))
        except (relay.CatalogEntryError, KeyError, TypeError, ValueError) as error:
            return Poison(f"forwarded demand: {error}")
        platform = next((p for p in self.upward if p.lower_node == sender), None)
        if platform is None:
            return Poison(f"forwarded demand: no platform of kind node names lower_node {sender!r} (its answer "
                          "could not go down)")
        if self.lists is None:
            return Poison("forwarded demand: this node files no demands from lower nodes")
        with self.uow() as uow:
            if uow.tiers.demands.from_peer(sender, lower_id, PROVIDER) is not None:
                return None  # a redelivery: it was filed
        principal = Principal(f"node:{sender}/{request.contact}"[:200], request.requester_code, frozenset({"consumer"}))
        now = self.ingest.clock()

        def filed(uow: UnitOfWork, demand: Demand) -> None:
            uow.tiers.demands.add(ForwardedDemand(demand.id, sender, lower_id, PROVIDER, platform.name), now)
            self.decided(uow, demand, now)  # decided at once by a rule (不予共享, 无条件共享)
            self.ingest.audit_writer.append_in(uow, [AuditRecord(
                at=now, request_id=uuid.uuid4().hex, subject=principal.subject, department_code=request.requester_code,
                roles=("consumer",), action="tier/forwarded-demand", target=f"demand:{demand.id}", result="OK",
                detail=f"demand {lower_id} of node {sender} for {request.resource_code}: {demand.state.value}")])

        try:
            self.lists.file_demand(principal, request, on_filed=filed)
        except (CatalogError, PermissionDenied) as error:
            with self.uow(write=True) as uow:
                if uow.tiers.demands.from_peer(sender, lower_id, PROVIDER) is None:
                    uow.tiers.demands.add(ForwardedDemand(f"{sender}:{lower_id}"[:40], sender, lower_id, PROVIDER,
                                                          platform.name), now)
                    self._answer_down(uow, platform, lower_id, request.resource_code, DemandState.REJECTED.value,
                                      f"node {self.node_id} could not file the demand: {error}",
                                      f"node:{self.node_id}", now)
                uow.commit()
        return None

    def _decision(self, body: bytes) -> Poison | None:
        """Lower side: the upper node's answer to a demand forwarded from here. An approval gives this node a
        grant of the same items and expiry (the records come down masked already, so nothing more is masked)."""
        try:
            sender, entry = relay.decode_decision(body, self.peers)
            demand_id, state = str(entry["demand_id"]), DemandState(str(entry["state"]))
            reason, decided_by = str(entry.get("reason", "")), str(entry.get("decided_by", ""))
            terms = entry.get("grant") or {}
            expires_at = dt.datetime.fromisoformat(terms["expires_at"]) if terms.get("expires_at") else None
            items = tuple(str(i) for i in terms.get("items", []))
        except (relay.CatalogEntryError, KeyError, TypeError, ValueError) as error:
            return Poison(f"demand decision: {error}")
        if state not in (DemandState.APPROVED, DemandState.REJECTED):
            return Poison(f"demand decision: {state.value} is not an answer")
        if self.lists is None:
            return Poison("demand decision: this node forwards no demands")
        now = self.ingest.clock()
        with self.uow(write=True) as uow:
            forwarded = uow.tiers.demands.get(demand_id)
            if forwarded is None or forwarded.side != REQUESTER or forwarded.peer_node != sender:
                return Poison(f"demand decision: demand {demand_id} was not forwarded to node {sender}")
            demand = uow.lists.get_demand(demand_id)
            if demand is None or demand.state is not DemandState.UNDER_REVIEW:
                return None  # a redelivery (already answered), or withdrawn meanwhile
            by = f"node:{sender}/{decided_by}"[:200]
            try:
                if state is DemandState.APPROVED:
                    decided = lists_domain.approve(demand, by, now, reason)
                    grant = lists_domain.grant_for(f"SQ-{demand_id[3:]}"[:40], decided, now, expires_at=expires_at,
                                                   items=items or None, masking={}, clear_delivery=True)
                    uow.lists.add_grant(grant)
                    decided = replace(decided, grant_id=grant.id)
                else:
                    decided = lists_domain.reject(demand, by, reason or f"node {sender} did not grant it", now)
            except CatalogError as error:
                return Poison(f"demand decision: {error}")
            self.lists.save(uow, decided, demand)
            self.ingest.audit_writer.append_in(uow, [AuditRecord(
                at=now, request_id=uuid.uuid4().hex, subject=f"node:{sender}", department_code=demand.provider_code,
                roles=("platform",), action="tier/demand-decision", target=f"demand:{demand_id}", result="OK",
                detail=f"{state.value} at node {sender} by {decided_by}" + (f": {reason}" if reason else ""))])
            uow.commit()
        return None

    def _demand_change(self, body: bytes) -> Poison | None:
        """Upper side: the lower node's requester withdrew, or contested the refusal of, a demand it forwarded
        here. A withdrawal closes the demand here; a contest files the dispute here for the department (its
        provider answers, the coordinator decides, each step goes down). Audited; what cannot be applied (the
        demand was decided meanwhile) is dead-lettered naming why."""
        try:
            sender, entry = relay.decode_demand_change(body, self.peers)
            lower_id, change = str(entry["demand_id"]), str(entry["change"])
            text, by = str(entry.get("text", "")), str(entry.get("by", ""))
            if change not in ("WITHDRAW", "CONTEST"):
                raise ValueError(f"change {change!r} is not WITHDRAW or CONTEST")
        except (relay.CatalogEntryError, KeyError, TypeError, ValueError) as error:
            return Poison(f"demand change: {error}")
        if self.lists is None:
            return Poison("demand change: this node files no demands from lower nodes")
        with self.uow() as uow:
            forwarded = uow.tiers.demands.from_peer(sender, lower_id, PROVIDER)
            demand = uow.lists.get_demand(forwarded.demand_id) if forwarded else None
            contested = uow.lists.dispute_of(demand.id) if demand else None
        if forwarded is None or demand is None:
            return Poison(f"demand change: demand {lower_id} of node {sender} was not filed here")
        if (change == "WITHDRAW" and demand.state is DemandState.WITHDRAWN) or (change == "CONTEST" and contested):
            return None  # a redelivery
        now = self.ingest.clock()
        principal = Principal(f"node:{sender}/{by}"[:200], demand.requester_code, frozenset({"consumer"}))
        try:
            if change == "CONTEST":
                dispute, _ = DisputesApplication(self.lists).file(principal, demand.id, text)
                detail = f"demand {lower_id} of node {sender}: refusal contested, dispute {dispute.id}"
            else:
                with self.uow(write=True) as uow:
                    current = self.lists.load(uow, demand.id)
                    withdrawn = lists_domain.withdraw(current, now, text[:500])
                    self.lists.save(uow, withdrawn, current)
                    uow.commit()
                detail = f"demand {lower_id} of node {sender}: withdrawn by its requester"
        except (CatalogError, PermissionDenied) as error:
            self._audit_change(principal, demand, "REFUSED", f"demand {lower_id} of node {sender}: {change} "
                                                             f"not applied: {error}", now)
            return Poison(f"demand change: {change} of demand {lower_id} (here {demand.id}): {error}")
        self._audit_change(principal, demand, "OK", detail, now)
        return None

    def _audit_change(self, principal: Principal, demand: Demand, result: str, detail: str, now: dt.datetime) -> None:
        with self.uow(write=True) as uow:
            self.ingest.audit_writer.append_in(uow, [AuditRecord(
                at=now, request_id=uuid.uuid4().hex, subject=principal.subject, department_code=demand.requester_code,
                roles=("consumer",), action="tier/demand-change", target=f"demand:{demand.id}", result=result,
                detail=detail)])
            uow.commit()

    def _dispute_step(self, body: bytes) -> Poison | None:
        """Lower side: a step of the dispute of a demand forwarded from here, as the deciding node took it; the
        local dispute mirrors it and the demand takes its outcome (an approval gives this node its grant)."""
        try:
            sender, entry = relay.decode_dispute_step(body, self.peers)
            demand_id, state = str(entry["demand_id"]), DisputeState(str(entry["state"]))
            terms = entry.get("grant") or {}
            expires_at = dt.datetime.fromisoformat(terms["expires_at"]) if terms.get("expires_at") else None
            items = tuple(str(i) for i in terms.get("items", []))

            def at(name: str) -> dt.datetime | None:
                return dt.datetime.fromisoformat(entry[name]) if entry.get(name) else None

            provider_at, decided_at, escalated_at = at("provider_at"), at("decided_at"), at("escalated_at")
        except (relay.CatalogEntryError, KeyError, TypeError, ValueError) as error:
            return Poison(f"dispute step: {error}")
        if self.lists is None:
            return Poison("dispute step: this node forwards no demands")
        now = self.ingest.clock()
        with self.uow(write=True) as uow:
            forwarded = uow.tiers.demands.get(demand_id)
            if forwarded is None or forwarded.side != REQUESTER or forwarded.peer_node != sender:
                return Poison(f"dispute step: demand {demand_id} was not forwarded to node {sender}")
            demand = uow.lists.get_demand(demand_id)
            dispute = uow.lists.dispute_of(demand_id)
            if demand is None or dispute is None:
                return Poison(f"dispute step: demand {demand_id} has no dispute here")
            if dispute.state is state or dispute.state in (DisputeState.SETTLED, DisputeState.GRANTED,
                                                           DisputeState.REFUSED):
                return None  # a redelivery, or already final
            node = f"node:{sender}/"
            mirrored = replace(
                dispute, state=state, provider_answer=str(entry.get("provider_answer", "")),
                provider_by=(node + str(entry["provider_by"]))[:200] if entry.get("provider_by") else "",
                provider_at=provider_at, decision_reason=str(entry.get("decision_reason", "")),
                conditions=str(entry.get("conditions", "")),
                decided_by=(node + str(entry["decided_by"]))[:200] if entry.get("decided_by") else "",
                decided_at=decided_at, escalated_at=escalated_at, updated_at=now, version=dispute.version + 1)
            resolved = disputes_domain.resolve_demand(demand, mirrored, now)
            if resolved.state is DemandState.APPROVED:
                grant = lists_domain.grant_for(f"SQ-{demand_id[3:]}"[:40], resolved, now, expires_at=expires_at,
                                               items=items or None, masking={}, clear_delivery=True)
                uow.lists.add_grant(grant)
                resolved = replace(resolved, grant_id=grant.id)
                mirrored = replace(mirrored, grant_id=grant.id)
            if resolved is not demand:
                self.lists.save(uow, resolved, demand)
            uow.lists.save_dispute(mirrored, dispute.version)
            self.ingest.audit_writer.append_in(uow, [AuditRecord(
                at=now, request_id=uuid.uuid4().hex, subject=f"node:{sender}", department_code=demand.provider_code,
                roles=("platform",), action="tier/dispute-step", target=f"demand:{demand_id}", result="OK",
                detail=f"dispute {dispute.id}: {state.value} at node {sender} (there {entry.get('dispute_id', '')}); "
                       f"demand {resolved.state.value}")])
            uow.commit()
        return None

    def verify_chains(self) -> ChainReport:
        """Check, for every relayed record stored here, every hop's signature over the stored record."""
        report = ChainReport(problems=[])
        verified: envelopes.Verified = set()
        with self.uow() as uow:
            for relayed in uow.tiers.relayed():
                report.records += 1
                hops = [hop_from_dict(h) for h in relayed.hops]
                report.hops += len(hops)
                problems = envelopes.verify_hops(canonical_record(relayed.provider_code, relayed.resource_code,
                                                                  relayed.record), hops, self.peers, verified)
                if problems:
                    assert report.problems is not None
                    report.problems.append(f"{relayed.resource_code} {relayed.record.id}: {'; '.join(problems)}")
                else:
                    report.verified += 1
        return report

    # -- lower side: the catalog uplink --------------------------------------------------------------------
    def catalog_upward(self, platform: str, limit: int = 200) -> tuple[list[tuple[str, bytes]], int]:
        """The next published/retired catalog entries for an upper-node platform, each (message id, signed
        body), and the event position they reach; ``advance`` it once the broker confirmed them."""
        signer = self.ingest.signer
        peer = next((p.peer_node for p in self.upward if p.name == platform), "")
        with self.uow() as uow:
            position = uow.tiers.cursor(f"catalog:{platform}")
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
                if origin == peer:  # it came from that node: sending it back would be a loop
                    continue
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
            uow.tiers.set_cursor(f"catalog:{platform}", position)
            uow.commit()


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


Accept = Callable[[Sequence[Message]], list[Poison | Later | None]]
