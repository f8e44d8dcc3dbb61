"""QueryService (接口服务): decode, call one use case of node/services/query.py, encode; the audit entry's
target and detail (resource, grant, number of keys, keyed hashes) are set here. Both run their local,
short work on the event loop (``QueryApplication.verify_claim_async``, ``query_records_async``): a thread
per call cost more than the work; a verification's wait for its count's commit holds no thread."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import grpc
from exnode.v1 import query_pb2 as pb
from exnode.v1 import query_pb2_grpc

from catalog.claims import Answer, Claim
from node.ops.request_context import current, principal
from node.services.errors import CallerGone
from node.services.query import QueryApplication, VerifyAnswer, VerifyRequest
from node.services.remote import CALLER_DEADLINE, CALLER_LEFT, DEADLINE_SLACK_S
from security.verdicts import canonical

_RESULTS = {Answer.MATCH: pb.MATCH, Answer.MISMATCH: pb.MISMATCH, Answer.NO_RECORD: pb.NO_RECORD}


class QueryServicer(query_pb2_grpc.QueryServiceServicer):
    def __init__(self, app: QueryApplication) -> None:
        self.app = app

    async def QueryRecords(self, request: pb.QueryRecordsRequest, context: grpc.aio.ServicerContext
                           ) -> pb.QueryRecordsResponse:
        """A routed query whose caller leaves stops waiting for the answering node at once (its RPC thread
        is freed; the reply, when it comes, is dropped): the worker thread sees ``CALLER_LEFT``, as a
        routed VerifyClaim does. Nothing is counted here; the answering node audits what it answered."""
        current().target = f"resource:{request.resource_code}"
        current().detail = f"{len(request.keys)} keys"
        left: list[str] = []
        leaving = CALLER_LEFT.set(left)  # the task's copy of the context, and to_thread's, share the list
        work = asyncio.ensure_future(self.app.query_records_async(
            principal(), request.resource_code, [dict(key.values) for key in request.keys], current().request_id))
        CALLER_LEFT.reset(leaving)
        try:
            answer = await asyncio.shield(work)
        except asyncio.CancelledError:
            left.append("CANCELLED")
            with contextlib.suppress(Exception):
                await work
            raise
        current().detail = answer.audit_detail()
        return pb.QueryRecordsResponse(
            resource_code=answer.resource_code, grant_id=answer.grant_id, sealing=answer.sealing,
            request_id=answer.request_id, answered_by=answer.answered_by, results=[
                pb.KeyResult(index=a.index, status=pb.KeyResult.FOUND if a.found else pb.KeyResult.NOT_FOUND,
                             key_hash=a.key_hash, record_id=a.record_id, sequence=a.sequence,
                             payload=(a.sealed or json.dumps(a.payload, ensure_ascii=False).encode()) if a.found
                             else b"", disputed=a.disputed) for a in answer.answers])

    async def VerifyClaim(self, request: pb.VerifyClaimRequest, context: grpc.aio.ServicerContext) -> pb.Verdict:
        """A caller that leaves (cancels, or its deadline passes) is charged by one rule, the one the
        answering node of a routed request applies too: a verification is counted exactly once if the node
        produced its answer (verdict signed, count committed), and never if the caller had left before the
        work began (nothing is done: the deadline rule). One that leaves while it runs is counted, since the
        node did the work and signed a verdict, and a response lost on the wire looks the same to it (so
        cancel-and-retry gives no free verifications); its one entry, committed with the count, records
        CANCELLED or DEADLINE_EXCEEDED instead of OK. Routed, the answering node counts what it answered
        within the request's deadline, which is never later than this caller's (remote.CALLER_DEADLINE)."""
        current().target = f"resource:{request.resource_code}"
        current().detail = f"{len(request.claims)} claims"
        asked = VerifyRequest(request.resource_code, dict(request.key.values),
                              [Claim(c.item, c.value) for c in request.claims], current().request_id)
        context = current()
        audit_in = context.audit_in
        built: list[pb.Verdict] = []
        joined: list[bool] = []
        left: list[str] = []  # appended on the loop when the caller goes; read by the worker thread
        deadline = CALLER_DEADLINE.get()  # here: ``with_count`` runs in the audit writer's thread

        def gone() -> str:
            """CANCELLED or DEADLINE_EXCEEDED once the caller has left (a cancel close to the deadline is the
            deadline's), else ""."""
            now = time.monotonic()
            if deadline is not None and (now >= deadline or left and now >= deadline - DEADLINE_SLACK_S):
                return "DEADLINE_EXCEEDED"
            return left[0] if left else ""

        def with_count(uow: Any, answered: VerifyAnswer) -> None:
            """The call's audit entry commits with its quota count: one commit, not two, before it is sent."""
            if audit_in is not None:
                result = gone()
                detail = answered.audit_detail()
                audit_in(context, uow, f"answered and counted, not delivered: the caller left; {detail}" if result
                         else detail, result or "OK")
                joined.append(True)

        async def verify() -> VerifyAnswer:
            if gone():
                raise CallerGone("the caller left before the verification began: nothing was verified or counted")
            answered = await self.app.verify_claim_async(caller, asked, with_count,
                                                         lambda prepared: built.append(verdict_to_proto(prepared)))
            context.committed_ok = bool(joined)  # the count committed, and the call's OK entry with it
            return answered

        caller = principal()
        # the task's copy of the context shares the list, and so does the thread a routed verification
        # runs in (to_thread copies the task's context): a routed wait ends when the caller leaves
        leaving = CALLER_LEFT.set(left)
        work = asyncio.ensure_future(verify())
        CALLER_LEFT.reset(leaving)
        try:
            answer = await asyncio.shield(work)
        except asyncio.CancelledError:  # the caller left: the count's outcome decides the call's one entry
            left.append("CANCELLED")
            with contextlib.suppress(Exception):
                await work
            raise
        context.detail = answer.audit_detail()
        return built[0] if built else verdict_to_proto(answer)  # a routed verification: nothing counted here


def verdict_to_proto(answer: VerifyAnswer) -> pb.Verdict:
    """The response; built before the count commits (``QueryApplication.verify_claim``'s ``prepare``), so a
    response that cannot be built counts nothing and leaves one entry, the failure's."""
    document = answer.verdict.document
    if answer.sealed:  # the verdict file only for the holder of the department's key
        return pb.Verdict(grant_id=answer.grant.id, key_id=document["kid"], sealing=answer.sealing,
                          sealed=answer.sealed, request_id=answer.request_id)
    return pb.Verdict(
        answers=[pb.ClaimAnswer(item=item, result=_RESULTS[result]) for item, result in answer.answers],
        state=document["state"], grant_id=answer.grant.id, request_hash=document["request_hash"],
        document=answer.verdict.canonical_document(), signature=answer.verdict.signature, key_id=document["kid"],
        request=answer.request_bytes or canonical(answer.request), disputed=bool(document.get("disputed", False)))
