"""Between nodes of different tiers (department → region → ministry): the wire formats of the link.

Records: the departmental protobuf envelope under its own content type, so that the upper node's inbound
consumer tells one-record envelopes *relayed by a peer node* (signed by that node, carrying the earlier
hops, grouped into one transaction per batch) from whole batches a provider's platform sends.

Catalog entries: a lower node publishes its published and retired resources upward on the same queue (and
so through the same shovel), as the catalog JSON interchange (``catalog.interchange``) of one resource
version, signed by the sending node's key over the canonical JSON, so the upper node stores only what a
trusted peer vouches for.

Demands (回流): a lower node forwards a demand its department filed for a resource of its upper node as a
signed ``demand`` document up the same link; the upper node's answer (approved with the grant's terms, or
rejected with the reason) comes down as a signed ``decision`` through the downward shovel. Each kind is
signed under its own context, so no document can pass for another.

Disputed marks (校核纠错): when an objection to a record is raised or answered at a node, the node platforms
it relayed the record to get a signed ``dispute`` notice (provider, resource, record id, objection id,
disputed or not) instead of the re-published envelope: the envelope's mark is not signed (routing
information), and the upper node changes what it serves only on what a trusted peer vouches for. An
objection raised at an upper node goes down the record's route as a signed ``objection`` document (the
objector, evidence, attachment hashes), each hop toward the record's origin; the provider's answer comes
back up, hop by hop, as a signed ``objection answer``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from adapters.codecs import department
from adapters.codecs.envelope import MAX_ENVELOPE_BYTES, Envelope, TrustedKeys
from adapters.errors import AdapterError
from security.merkle import BatchSigner

CONTENT_TYPE = "application/vnd.exnode.relay+x-protobuf"
CATALOG_CONTENT_TYPE = "application/vnd.exnode.catalog+json"
_CATALOG_CONTEXT = b"exnode-catalog-entry/1\n"
MAX_CATALOG_BYTES = 1024 * 1024
MAX_DEMAND_BYTES = 64 * 1024


def encode(envelope: Envelope, *, checked: bool = False) -> bytes:
    return department.encode(envelope, checked=checked)


def decode(data: bytes, *, max_bytes: int = MAX_ENVELOPE_BYTES) -> Envelope:
    return department.decode(data, max_bytes=max_bytes)


class CatalogEntryError(AdapterError, ValueError):
    """A catalog entry from a peer that cannot be trusted or read; the message names the problem."""


REPORT_CONTENT_TYPE = "application/vnd.exnode.report+json"
_REPORT_CONTEXT = b"exnode-monthly-report/1\n"
MAX_REPORT_BYTES = 16 * 1024 * 1024


def _canonical(entry: Mapping[str, Any], context: bytes = _CATALOG_CONTEXT) -> bytes:
    return context + json.dumps(entry, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


def encode_report(report: Mapping[str, Any], sender: str, signer: BatchSigner) -> bytes:
    """A monthly report sent upward (``month``, ``xml``), signed by the sending node like a catalog entry
    but under its own context, so neither can pass for the other."""
    document = {"entry": dict(report), "sender": sender, "kid": signer.kid, "algorithm": signer.algorithm}
    signature = signer.sign(_canonical({"entry": document["entry"], "sender": sender}, _REPORT_CONTEXT))
    return json.dumps({**document, "signature": signature.hex()}, ensure_ascii=False).encode("utf-8")


def decode_report(data: bytes, trusted: TrustedKeys) -> tuple[str, dict[str, Any]]:
    """(sender node, report) when a trusted peer signed it; CatalogEntryError naming the problem otherwise."""
    return _decode_signed(data, trusted, _REPORT_CONTEXT, "monthly report", MAX_REPORT_BYTES)


def _decode_signed(data: bytes, trusted: TrustedKeys, context: bytes, what: str,
                   limit: int = MAX_DEMAND_BYTES) -> tuple[str, dict[str, Any]]:
    """A signed tier document's sender and entry; its size is bounded (``limit``) before it is parsed."""
    if len(data) > limit:
        raise CatalogEntryError(f"document: {len(data)} bytes; at most {limit}")
    try:
        document = json.loads(data.decode("utf-8"))
        entry, sender, kid = document["entry"], document["sender"], document["kid"]
        signature = bytes.fromhex(document["signature"])
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
        raise CatalogEntryError(f"document: not a {what}: {error}") from None
    if not isinstance(entry, dict) or not isinstance(sender, str):
        raise CatalogEntryError("document: entry must be an object and sender a node id")
    key = trusted.get(sender, {}).get(kid)
    if key is None:
        raise CatalogEntryError(f"kid: {kid!r} is not a trusted key of node {sender!r}")
    if not key.verify(_canonical({"entry": entry, "sender": sender}, context), signature):
        raise CatalogEntryError(f"signature: does not verify with key {kid!r} of node {sender!r}")
    return sender, entry


DEMAND_CONTENT_TYPE = "application/vnd.exnode.demand+json"
DECISION_CONTENT_TYPE = "application/vnd.exnode.demand-decision+json"
_DEMAND_CONTEXT = b"exnode-demand/1\n"
_DECISION_CONTEXT = b"exnode-demand-decision/1\n"


def _encode_signed(entry: Mapping[str, Any], sender: str, signer: BatchSigner, context: bytes) -> bytes:
    document = {"entry": dict(entry), "sender": sender, "kid": signer.kid, "algorithm": signer.algorithm}
    signature = signer.sign(_canonical({"entry": document["entry"], "sender": sender}, context))
    return json.dumps({**document, "signature": signature.hex()}, ensure_ascii=False).encode("utf-8")


def encode_demand(demand: Mapping[str, Any], sender: str, signer: BatchSigner) -> bytes:
    """A demand a lower node forwards upward (回流): its id there, the requester, resource, items, purpose,
    legal basis, contact, kind and quota, signed by the sending node."""
    return _encode_signed(demand, sender, signer, _DEMAND_CONTEXT)


def decode_demand(data: bytes, trusted: TrustedKeys) -> tuple[str, dict[str, Any]]:
    return _decode_signed(data, trusted, _DEMAND_CONTEXT, "forwarded demand")


def encode_decision(decision: Mapping[str, Any], sender: str, signer: BatchSigner) -> bytes:
    """The upper node's answer to a forwarded demand, sent down to the node that forwarded it."""
    return _encode_signed(decision, sender, signer, _DECISION_CONTEXT)


def decode_decision(data: bytes, trusted: TrustedKeys) -> tuple[str, dict[str, Any]]:
    return _decode_signed(data, trusted, _DECISION_CONTEXT, "demand decision")


def encode_catalog_entry(entry: Mapping[str, Any], sender: str, signer: BatchSigner) -> bytes:
    """``entry``: origin_node, event, code, version, status, metadata (interchange dict), ... as the
    sender states them; the sender's key signs the canonical form."""
    document = {"entry": dict(entry), "sender": sender, "kid": signer.kid, "algorithm": signer.algorithm}
    signature = signer.sign(_canonical({"entry": document["entry"], "sender": sender}))
    return json.dumps({**document, "signature": signature.hex()}, ensure_ascii=False).encode("utf-8")


def decode_catalog_entry(data: bytes, trusted: TrustedKeys) -> tuple[str, dict[str, Any]]:
    """(sender node, entry) when a trusted peer signed it; CatalogEntryError naming the problem otherwise."""
    return _decode_signed(data, trusted, _CATALOG_CONTEXT, "catalog entry", MAX_CATALOG_BYTES)


DISPUTE_CONTENT_TYPE = "application/vnd.exnode.dispute+json"
_DISPUTE_CONTEXT = b"exnode-dispute-notice/1\n"


def encode_dispute(notice: Mapping[str, Any], sender: str, signer: BatchSigner) -> bytes:
    """A disputed mark set (objection raised) or cleared (answered) on a record the sender relayed upward:
    ``provider_code``, ``resource_code``, ``record_id``, ``objection_id``, ``disputed``, ``at``."""
    return _encode_signed(notice, sender, signer, _DISPUTE_CONTEXT)


def decode_dispute(data: bytes, trusted: TrustedKeys) -> tuple[str, dict[str, Any]]:
    return _decode_signed(data, trusted, _DISPUTE_CONTEXT, "dispute notice")


DEMAND_CHANGE_CONTENT_TYPE = "application/vnd.exnode.demand-change+json"
DISPUTE_STEP_CONTENT_TYPE = "application/vnd.exnode.dispute-step+json"
_DEMAND_CHANGE_CONTEXT = b"exnode-demand-change/1\n"
_DISPUTE_STEP_CONTEXT = b"exnode-dispute-step/1\n"


def encode_demand_change(change: Mapping[str, Any], sender: str, signer: BatchSigner) -> bytes:
    """The requester's withdrawal (``change`` WITHDRAW) or contest of a refusal (CONTEST, with the duty basis)
    of a demand the sender forwarded upward, carried to the node that decides it."""
    return _encode_signed(change, sender, signer, _DEMAND_CHANGE_CONTEXT)


def decode_demand_change(data: bytes, trusted: TrustedKeys) -> tuple[str, dict[str, Any]]:
    return _decode_signed(data, trusted, _DEMAND_CHANGE_CONTEXT, "demand change")


def encode_dispute_step(step: Mapping[str, Any], sender: str, signer: BatchSigner) -> bytes:
    """The deciding node's step in the dispute of a forwarded demand (the provider's answer, the
    coordinator's decision), with the demand's outcome and grant terms, sent down to the requester's node."""
    return _encode_signed(step, sender, signer, _DISPUTE_STEP_CONTEXT)


def decode_dispute_step(data: bytes, trusted: TrustedKeys) -> tuple[str, dict[str, Any]]:
    return _decode_signed(data, trusted, _DISPUTE_STEP_CONTEXT, "dispute step")


OBJECTION_CONTENT_TYPE = "application/vnd.exnode.objection+json"
OBJECTION_ANSWER_CONTENT_TYPE = "application/vnd.exnode.objection-answer+json"
_OBJECTION_CONTEXT = b"exnode-objection/1\n"
_OBJECTION_ANSWER_CONTEXT = b"exnode-objection-answer/1\n"


def encode_objection(objection: Mapping[str, Any], sender: str, signer: BatchSigner) -> bytes:
    """An objection raised at the sender (an upper node) to a record relayed to it, sent down toward the
    record's origin: ``objection_id`` (the sender's), provider, resource, record id, item, ``raiser_code``,
    ``raised_by``, ``evidence``, ``attachments``, ``raised_at``."""
    return _encode_signed(objection, sender, signer, _OBJECTION_CONTEXT)


def decode_objection(data: bytes, trusted: TrustedKeys) -> tuple[str, dict[str, Any]]:
    return _decode_signed(data, trusted, _OBJECTION_CONTEXT, "forwarded objection")


def encode_objection_answer(answer: Mapping[str, Any], sender: str, signer: BatchSigner) -> bytes:
    """The provider's answer to a forwarded objection (confirmed with reasons, or corrected naming the new
    record), sent up to the node that forwarded it: ``objection_id`` (that node's), ``state``, ``answer``,
    ``answered_by``, ``answered_at``, ``corrected_by``, ``deadline``, ``escalated_at``."""
    return _encode_signed(answer, sender, signer, _OBJECTION_ANSWER_CONTEXT)


def decode_objection_answer(data: bytes, trusted: TrustedKeys) -> tuple[str, dict[str, Any]]:
    return _decode_signed(data, trusted, _OBJECTION_ANSWER_CONTEXT, "objection answer")
