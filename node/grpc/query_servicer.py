"""QueryService (接口服务): decode, call one use case of node/services/query.py off the event loop, encode;
the audit entry's target and detail (resource, grant, number of keys, keyed hashes) are set here."""

from __future__ import annotations

import asyncio
import json

import grpc
from exnode.v1 import query_pb2 as pb
from exnode.v1 import query_pb2_grpc

from catalog.claims import Answer, Claim
from node.ops.request_context import current, principal
from node.services.query import QueryApplication, VerifyRequest
from security.verdicts import canonical

_RESULTS = {Answer.MATCH: pb.MATCH, Answer.MISMATCH: pb.MISMATCH, Answer.NO_RECORD: pb.NO_RECORD}


class QueryServicer(query_pb2_grpc.QueryServiceServicer):
    def __init__(self, app: QueryApplication) -> None:
        self.app = app

    async def QueryRecords(self, request: pb.QueryRecordsRequest, context: grpc.aio.ServicerContext
                           ) -> pb.QueryRecordsResponse:
        current().target = f"resource:{request.resource_code}"
        current().detail = f"{len(request.keys)} keys"
        answer = await asyncio.to_thread(self.app.query_records, principal(), request.resource_code,
                                         [dict(key.values) for key in request.keys], current().request_id)
        current().detail = answer.audit_detail()
        return pb.QueryRecordsResponse(
            resource_code=answer.resource_code, grant_id=answer.grant_id, sealing=answer.sealing,
            request_id=answer.request_id, answered_by=answer.answered_by, results=[
                pb.KeyResult(index=a.index, status=pb.KeyResult.FOUND if a.found else pb.KeyResult.NOT_FOUND,
                             key_hash=a.key_hash, record_id=a.record_id, sequence=a.sequence,
                             payload=(a.sealed or json.dumps(a.payload, ensure_ascii=False).encode()) if a.found
                             else b"", disputed=a.disputed) for a in answer.answers])

    async def VerifyClaim(self, request: pb.VerifyClaimRequest, context: grpc.aio.ServicerContext) -> pb.Verdict:
        current().target = f"resource:{request.resource_code}"
        current().detail = f"{len(request.claims)} claims"
        asked = VerifyRequest(request.resource_code, dict(request.key.values),
                              [Claim(c.item, c.value) for c in request.claims], current().request_id)
        answer = await asyncio.to_thread(self.app.verify_claim, principal(), asked)
        current().detail = answer.audit_detail()
        document = answer.verdict.document
        if answer.sealed:  # the verdict file only for the holder of the department's key
            return pb.Verdict(grant_id=answer.grant.id, key_id=document["kid"], sealing=answer.sealing,
                              sealed=answer.sealed, request_id=answer.request_id)
        return pb.Verdict(
            answers=[pb.ClaimAnswer(item=item, result=_RESULTS[result]) for item, result in answer.answers],
            state=document["state"], grant_id=answer.grant.id, request_hash=document["request_hash"],
            document=canonical(document), signature=answer.verdict.signature, key_id=document["kid"],
            request=canonical(answer.request), disputed=bool(document.get("disputed", False)))
