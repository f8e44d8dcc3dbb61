"""AuditService (security_officer only) and KeysService: decode, ask the policy, call one use case."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Mapping

import grpc
from exnode.v1 import audit_pb2 as pb
from exnode.v1 import audit_pb2_grpc, keys_pb2, keys_pb2_grpc

from catalog.errors import FieldProblem, InvalidField
from node.grpc.convert import timestamp_of
from node.ops.metrics import record_audit_verification
from node.ops.request_context import current, principal
from node.services.audit import AuditApplication
from node.services.errors import RemoteUnavailable, TimestampsUnavailable
from node.services.query import QueryApplication
from node.services.timestamps import TIMESTAMP_KINDS, Timestamps
from node.storage.audit_repository import AuditFilter
from security.audit import AuditEntry
from security.keys import PublicKey
from security.policy import AUDIT_TRAIL, NODE_KEYS, Action, Policy
from security.timestamps import Evidence

EXPORT_CHUNK_BYTES = 256 * 1024


def _time(request: object, field: str) -> dt.datetime | None:
    return timestamp_of(request, field)


def entry_to_proto(entry: AuditEntry) -> pb.AuditEntry:
    record = entry.record
    message = pb.AuditEntry(
        sequence=entry.sequence, request_id=record.request_id, subject=record.subject,
        department_code=record.department_code, roles=list(record.roles), action=record.action, target=record.target,
        result=record.result, peer=record.peer, detail=record.detail, previous_hash=entry.previous_hash,
        entry_hash=entry.entry_hash)
    message.at.FromDatetime(record.at)
    return message


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    def __init__(self, app: AuditApplication, policy: Policy) -> None:
        self.app = app
        self.policy = policy

    def _require(self) -> None:
        current().target = str(AUDIT_TRAIL)
        self.policy.require(principal(), Action.AUDIT_READ, AUDIT_TRAIL)

    async def QueryAudit(self, request: pb.QueryAuditRequest, context: grpc.aio.ServicerContext) -> pb.QueryAuditResponse:
        self._require()
        flt = AuditFilter(
            since=_time(request, "since"), until=_time(request, "until"),
            subject=request.subject, department_code=request.department_code, action=request.action,
            target=request.target, result=request.result)
        page = await asyncio.to_thread(self.app.query, flt, request.page_size, request.page_token)
        return pb.QueryAuditResponse(entries=[entry_to_proto(e) for e in page.entries],
                                     next_page_token=page.next_page_token)

    async def ExportAudit(self, request: pb.ExportAuditRequest, context: grpc.aio.ServicerContext
                          ) -> AsyncIterator[pb.ExportChunk]:
        self._require()
        since = _time(request, "since")
        until = _time(request, "until")
        lines = await asyncio.to_thread(lambda: list(self.app.export(since, until)))
        chunk: list[bytes] = []
        size = 0
        for line in lines:
            data = (line + "\n").encode("utf-8")
            chunk.append(data)
            size += len(data)
            if size >= EXPORT_CHUNK_BYTES:
                yield pb.ExportChunk(jsonl=b"".join(chunk))
                chunk, size = [], 0
        if chunk:
            yield pb.ExportChunk(jsonl=b"".join(chunk))

    async def VerifyAudit(self, request: pb.VerifyAuditRequest, context: grpc.aio.ServicerContext
                          ) -> pb.VerifyAuditResponse:
        self._require()
        result = await asyncio.to_thread(self.app.verify_recorded, principal(), "rpc")
        record_audit_verification(result)
        return pb.VerifyAuditResponse(
            ok=result.ok, entries_checked=result.entries_checked, first_broken_sequence=result.first_broken_sequence,
            problem=result.problem, checkpoints_checked=result.checkpoints_checked,
            unsigned_tail=result.unsigned_tail, first_sequence=result.first_sequence,
            last_sequence=result.last_sequence)


class KeysServicer(keys_pb2_grpc.KeysServiceServicer):
    def __init__(self, verifiers: Mapping[str, PublicKey], active_kid: str, node_id: str, policy: Policy,
                 timestamps: Timestamps | None = None, query: QueryApplication | None = None) -> None:
        self.verifiers = verifiers
        self.active_kid = active_kid
        self.node_id = node_id
        self.policy = policy
        self.timestamps = timestamps
        self.query = query
        """Routes a request for another node's verdict evidence (``query.remote``, ``query.next_hop``)."""

    def _remote_evidence(self, request: keys_pb2.GetTimestampRequest) -> Evidence:
        """The evidence of a verdict another node signed, from that node (it stamped what it signed)."""
        if request.kind != "verdict":
            raise InvalidField([FieldProblem("node_id", f"is for a verdict's evidence, not a {request.kind}'s")])
        if not request.resource_code:
            raise InvalidField([FieldProblem("resource_code", "is required with node_id: it routes the request")])
        remote = self.query.remote if self.query is not None else None
        if remote is None:
            raise RemoteUnavailable(request.node_id, f"node {self.node_id} does not talk to other nodes")
        return remote.timestamp(principal(), request.node_id, request.kind, request.ref, request.resource_code,
                                via=self.query.next_hop(request.resource_code))  # type: ignore[union-attr]

    async def ListPublicKeys(self, request: keys_pb2.ListPublicKeysRequest, context: grpc.aio.ServicerContext
                             ) -> keys_pb2.ListPublicKeysResponse:
        current().target = str(NODE_KEYS)
        self.policy.require(principal(), Action.KEYS_READ, NODE_KEYS)
        return keys_pb2.ListPublicKeysResponse(node_id=self.node_id, keys=[
            keys_pb2.PublicKey(kid=k.kid, algorithm=k.algorithm, public_pem=k.public_pem, created_at=k.created_at,
                               active=k.kid == self.active_kid)
            for k in self.verifiers.values()])

    async def GetTimestamp(self, request: keys_pb2.GetTimestampRequest, context: grpc.aio.ServicerContext
                           ) -> keys_pb2.TimestampEvidence:
        """Evidence is public like the keys: digests, a proof and the TSA's token, nothing personal."""
        current().target = f"timestamp:{request.kind}:{request.ref}"[:200]
        self.policy.require(principal(), Action.KEYS_READ, NODE_KEYS)
        if request.kind not in TIMESTAMP_KINDS:
            raise InvalidField([FieldProblem("kind", f"{request.kind!r} is not one of {', '.join(TIMESTAMP_KINDS)}")])
        if not request.ref or len(request.ref) > 128:
            raise InvalidField([FieldProblem("ref", "1-128 characters: what the statement is known by")])
        if request.node_id and request.node_id != self.node_id:  # a routed verdict: the answering node has it
            found = await asyncio.to_thread(self._remote_evidence, request)
        elif self.timestamps is None:
            raise TimestampsUnavailable("this node takes no trusted timestamps (tsa.url is not configured)")
        else:
            found = await asyncio.to_thread(self.timestamps.evidence, request.kind, request.ref)
        return keys_pb2.TimestampEvidence(kind=found.kind, ref=found.ref, digest=found.digest, index=found.index,
                                          size=found.size, proof=list(found.proof), token=found.token)
