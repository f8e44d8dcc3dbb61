"""ExchangeService: decode, call one use case (the pipeline's ingest, node/services/exchange.py's keys,
subscriptions and receipts, the pull) off the event loop, encode."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
from exnode.v1 import exchange_pb2 as pb
from exnode.v1 import exchange_pb2_grpc

from catalog.errors import FieldProblem, InvalidField
from catalog.records import Operation, Record
from node.ops.request_context import current, principal
from node.pipeline import IncomingBatch, Ingest, IngestResult
from node.services.errors import AckTimeout, NotReady
from node.services.exchange import ExchangeApplication
from node.services.pull import PullApplication, PullSession, SignedPullBatch

_OPERATIONS = {pb.UPSERT: Operation.UPSERT, pb.DELETE: Operation.DELETE}


def batch_from_proto(message: pb.RecordBatch) -> IncomingBatch:
    problems: list[FieldProblem] = []
    records = []
    for index, r in enumerate(message.records):
        operation = _OPERATIONS.get(r.operation)
        if operation is None:
            problems.append(FieldProblem(f"records[{index}].operation", "must be UPSERT or DELETE"))
            continue
        payload: object = {}
        if r.payload:
            try:
                payload = json.loads(r.payload.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as error:
                problems.append(FieldProblem(f"records[{index}].payload", f"is not UTF-8 JSON: {error}"))
                continue
        if not isinstance(payload, dict):
            problems.append(FieldProblem(f"records[{index}].payload", "must be a JSON object keyed by item name"))
            continue
        records.append(Record(r.id, r.sequence, operation, payload))
    for field in ("batch_id", "provider_code", "resource_code", "key_id"):
        if not getattr(message, field):
            problems.append(FieldProblem(field, "is required"))
    if len(message.merkle_root) != 32:
        problems.append(FieldProblem("merkle_root", "must be the 32-byte SHA-256 Merkle root"))
    if not message.signature:
        problems.append(FieldProblem("signature", "is required"))
    if problems:
        raise InvalidField(problems)
    return IncomingBatch(message.batch_id, message.provider_code, message.resource_code, tuple(records),
                         message.merkle_root, message.key_id, message.signature,
                         tuple(len(r.payload) for r in message.records))


def _retrieve(future: asyncio.Future[IngestResult]) -> None:
    """Collect an unanswered store's outcome, so asyncio does not report it as never retrieved."""
    if not future.cancelled():
        future.exception()


def result_to_proto(result: IngestResult) -> pb.IngestResponse:
    return pb.IngestResponse(batch_id=result.batch_id, accepted=result.accepted, duplicates=result.duplicates,
                             sequence_gaps=list(result.gaps), subscribers=result.subscribers)


class ExchangeServicer(exchange_pb2_grpc.ExchangeServiceServicer):
    def __init__(self, app: ExchangeApplication, ingest: Ingest, pull: PullApplication | None = None) -> None:
        self.app = app
        self.ingest = ingest
        self.pull = pull

    async def RegisterKey(self, request: pb.RegisterKeyRequest, context: grpc.aio.ServicerContext
                          ) -> pb.RegisteredKey:
        current().target = f"department:{request.department_code}"
        key = await asyncio.to_thread(self.app.register_key, principal(), request.department_code,
                                      request.algorithm or "Ed25519", request.public_pem)
        current().detail = f"key {key.kid}"
        return pb.RegisteredKey(key_id=key.kid, department_code=key.department_code, algorithm=key.algorithm)

    async def RegisterEncryptionKey(self, request: pb.RegisterEncryptionKeyRequest,
                                    context: grpc.aio.ServicerContext) -> pb.RegisteredKey:
        current().target = f"department:{request.department_code}"
        key = await asyncio.to_thread(self.app.register_encryption_key, principal(), request.department_code,
                                      request.algorithm or "X25519-HPKE", request.public_pem)
        current().detail = f"encryption key {key.kid} ({key.algorithm})"
        return pb.RegisteredKey(key_id=key.kid, department_code=key.department_code, algorithm=key.algorithm)

    async def Ingest(self, request: pb.RecordBatch, context: grpc.aio.ServicerContext) -> pb.IngestResponse:
        """The call's audit entry commits with the batch (``audit_in``): stored and audited together or not
        at all, so a refused call (a full disk: RESOURCE_EXHAUSTED) stored nothing, and the caller's retry
        of the same records is accepted, not counted as duplicates of a store it was told had failed."""
        rc = current()
        rc.target = f"resource:{request.resource_code}"
        audit_in = rc.audit_in

        def joined(uow: Any, result: IngestResult) -> None:
            if audit_in is not None:
                audit_in(rc, uow, f"batch {result.batch_id}: {result.accepted} stored, "
                                  f"{result.duplicates} duplicates", "OK")

        caller = principal()

        def ingest() -> IngestResult:
            result = self.ingest.ingest(caller, batch_from_proto(request), joined)
            rc.committed_ok = audit_in is not None  # the OK entry committed with the records
            return result

        return result_to_proto(await asyncio.to_thread(ingest))

    async def IngestStream(self, request_iterator: AsyncIterator[pb.RecordBatch],
                           context: grpc.aio.ServicerContext) -> AsyncIterator[pb.IngestResponse]:
        """Each batch is checked and committed on its own; its answer follows its commit. The first bad
        batch ends the stream with its status (batches answered before it are stored).

        Pipelined: batch N+1 is checked (parsing, items, signature: nothing written) while batch N
        commits, so the commit's fsync does not leave the node idle. Stores run one at a time, in order,
        and a batch's answer still waits for its own commit; if N+1 is refused, N is answered first."""
        stored = 0
        storing: asyncio.Future[IngestResult] | None = None
        try:
            async for message in request_iterator:
                current().target = f"resource:{message.resource_code}"
                try:
                    checked = await asyncio.to_thread(self.ingest.check, principal(), batch_from_proto(message))
                except Exception:
                    if storing is not None:  # batch N is answered (or its own refusal raised) before N+1's
                        result, storing = await storing, None
                        stored += result.accepted
                        yield result_to_proto(result)
                    raise
                if storing is not None:
                    result, storing = await storing, None
                    stored += result.accepted
                    yield result_to_proto(result)
                storing = asyncio.ensure_future(asyncio.to_thread(self.ingest.store, principal(), checked))
            if storing is not None:
                result, storing = await storing, None
                stored += result.accepted
                yield result_to_proto(result)
        finally:
            current().detail = f"{stored} records stored so far"
            if storing is not None:  # the client went away: the store still completes, nobody is answered
                storing.add_done_callback(_retrieve)

    async def Subscribe(self, request: pb.SubscribeRequest, context: grpc.aio.ServicerContext) -> pb.Subscription:
        current().target = f"resource:{request.resource_code}"
        subscription, queue = await asyncio.to_thread(self.app.subscribe, principal(), request.resource_code,
                                                      request.platform)
        return pb.Subscription(queue=queue, resource_code=subscription.resource_code, grant_id=subscription.grant_id,
                               platform=subscription.platform)

    async def GetDeliveryStatus(self, request: pb.DeliveryStatusRequest, context: grpc.aio.ServicerContext
                                ) -> pb.DeliveryStatus:
        current().target = f"batch:{request.batch_id}"
        stored, states = await asyncio.to_thread(self.app.delivery_status, principal(), request.batch_id)
        platforms = [pb.PlatformDelivery(platform=p, state=s, attempts=a, last_error=e) for p, s, a, e in states]
        if any(s == "DEAD" for _, s, _, _ in states):
            state = "DEAD_LETTERED"
        elif states and all(s == "RECEIPTED" for _, s, _, _ in states):
            state = "RECEIPTED"
        elif states and all(s in ("CONFIRMED", "RECEIPTED") for _, s, _, _ in states):
            state = "PUBLISHED"
        else:
            state = "STORED"
        details = []
        if not states:
            details.append("no subscriber held a live grant when the batch was stored: nothing to relay")
        if stored.gaps:
            details.append(f"sequence gaps: {', '.join(stored.gaps)}")
        return pb.DeliveryStatus(batch_id=stored.batch_id, state=state, platforms=platforms,
                                 record_count=stored.record_count, detail="; ".join(details))

    async def SendReceipt(self, request: pb.Receipt, context: grpc.aio.ServicerContext) -> pb.ReceiptAck:
        current().target = f"batch:{request.batch_id}"
        fresh = await asyncio.to_thread(self.app.receipt, principal(), request.batch_id, request.receiver_code,
                                        list(request.record_ids), request.key_id, request.signature)
        current().detail = f"receipt for {len(set(request.record_ids))} records" + ("" if fresh else " (repeat)")
        return pb.ReceiptAck(batch_id=request.batch_id)

    async def Pull(self, request_iterator: AsyncIterator[pb.PullRequest], context: grpc.aio.ServicerContext
                   ) -> AsyncIterator[pb.PullItem]:
        """Header, batches (at most ``window`` ahead of the acknowledgements), manifest; then wait for the
        manifest's acknowledgement. Reading acknowledgements runs beside sending, and the next batch is
        prepared in a worker thread while the current one is on the wire."""
        if self.pull is None:
            raise NotReady("the nightly pull is not configured on this node")
        requests = request_iterator.__aiter__()
        try:
            first = await requests.__anext__()
        except StopAsyncIteration:
            raise InvalidField.one("start", "a pull begins with a start message") from None
        if first.WhichOneof("kind") != "start":
            raise InvalidField.one("start", "a pull begins with a start message, not an acknowledgement")
        session = await asyncio.to_thread(self.pull.open, principal(), first.start.cursor, replay=first.start.replay,
                                          until_day=first.start.until_day, sealed=first.start.sealed)
        current().target = f"platform:{session.scope.platform}"
        settings = self.pull.settings
        acks: asyncio.Queue[pb.PullRequest | None] = asyncio.Queue(maxsize=settings.window + 2)

        async def read_acks() -> None:
            async for message in requests:
                await acks.put(message)
            await acks.put(None)

        reader = asyncio.create_task(read_acks())
        prepared: asyncio.Future[SignedPullBatch | None] | None = None
        try:
            yield pb.PullItem(header=pb.PullHeader(node_id=self.pull.node_id, platform=session.scope.platform,
                                                   from_cursor=session.from_cursor, window=settings.window,
                                                   resumed=session.resumed))
            prepared = asyncio.ensure_future(asyncio.to_thread(session.next_batch))
            while True:
                batch = await prepared
                if batch is None:
                    break
                prepared = asyncio.ensure_future(asyncio.to_thread(session.next_batch))
                while session.unacknowledged >= settings.window:
                    if not await self._await_ack(session, acks, settings.ack_timeout_s):
                        raise AckTimeout(f"the client stopped acknowledging with {session.unacknowledged} batches "
                                         "outstanding; the next pull resumes after the last acknowledged batch")
                session.sent(batch.to_cursor, batch.position)
                yield pb.PullItem(batch=pb.PullBatch(
                    index=batch.index, from_cursor=batch.from_cursor, to_cursor=batch.to_cursor, records=batch.records,
                    merkle_root=batch.root, key_id=batch.kid, signature=batch.signature, disputed=batch.disputed,
                    sealed_records=batch.sealed, sealing=batch.sealing or {}))
                current().detail = (f"{session.records} records in {session.batches} batches sent"
                                    + (f", sealed to key {session.seal_key.kid}" if session.seal_key else ""))
            manifest = await asyncio.to_thread(session.manifest)
            session.sent(manifest.to_cursor, manifest.position)
            yield pb.PullItem(manifest=pb.Manifest(
                from_cursor=manifest.from_cursor, to_cursor=manifest.to_cursor, record_count=manifest.record_count,
                merkle_root=manifest.root, key_id=manifest.kid, signature=manifest.signature,
                batch_count=manifest.batch_count, until_day=manifest.until_day, version=manifest.version,
                signed_at=manifest.signed_at))
            while session.unacknowledged and await self._await_ack(session, acks, settings.ack_timeout_s):
                pass
            current().detail = (f"{session.records} records in {session.batches} batches; "
                                f"acknowledged up to position {session.acknowledged}")
        finally:
            reader.cancel()
            if prepared is not None:
                prepared.cancel()

    @staticmethod
    async def _await_ack(session: PullSession, acks: asyncio.Queue[pb.PullRequest | None], timeout: float) -> bool:
        """Wait for the next acknowledgement and store it; False when the client closed its side."""
        try:
            message = await asyncio.wait_for(acks.get(), timeout)
        except TimeoutError:
            raise AckTimeout(f"no acknowledgement within {timeout:g} s with {session.unacknowledged} batches "
                             "outstanding; the next pull resumes after the last acknowledged batch") from None
        if message is None:
            return False
        if message.WhichOneof("kind") != "ack":
            raise InvalidField.one("start", "a pull has one start message; then only acknowledgements")
        position = session.settle(message.ack.cursor)
        await asyncio.to_thread(session.persist, position)
        return True
