"""The inbound queue's batches (``adapters.rabbit.InboundConsumer``) into the pipeline: the same checks and
transaction as gRPC ingest, with the provider's signature standing for its identity (no token travels on
AMQP). A refusal becomes a dead letter whose reason names the check, and is audited."""

from __future__ import annotations

from collections.abc import Callable

from adapters.codecs.envelope import Envelope
from adapters.rabbit import Poison
from catalog.errors import AlreadyExists, InvalidField, NotFound
from node.pipeline.batches import IncomingBatch
from node.pipeline.ingest import Ingest
from node.services.errors import BadSignature, RequestTooLarge
from security.audit import AuditRecord
from security.identity import Principal
from security.policy import PermissionDenied

REFUSALS = (InvalidField, BadSignature, PermissionDenied, NotFound, RequestTooLarge, AlreadyExists)


def inbound_handler(ingest: Ingest) -> Callable[[Envelope, str], None]:
    """What the inbound consumer does with one envelope: store it, or raise Poison with the reason."""

    def handle(envelope: Envelope, source: str) -> None:
        principal = Principal(subject=f"platform:{source or 'inbound'}", department_code=envelope.provider_code,
                              roles=frozenset({"platform"}))
        batch = IncomingBatch(envelope.batch_id, envelope.provider_code, envelope.resource_code,
                              tuple(envelope.records), envelope.signed.root, envelope.signed.kid,
                              envelope.signed.signature)
        try:
            ingest.ingest(principal, batch)
        except AlreadyExists:
            return  # a platform re-sent a batch the node already has: nothing to do, ack it
        except REFUSALS as error:
            reason = f"{type(error).__name__}: {error}"
            ingest.audit_writer.append([AuditRecord(
                at=ingest.clock(), request_id=envelope.batch_id, subject=principal.subject,
                department_code=principal.department_code, roles=("platform",), action="inbound/dead-letter",
                target=f"resource:{envelope.resource_code}", result="REFUSED", detail=reason[:2000])])
            raise Poison(reason) from None

    return handle
