"""The pipeline and the exchange, counted (the counters are node/ops/metrics.py's). Subclasses, so the
record's path itself carries no metrics code (STYLE.md §6)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from node.ops.metrics import (
    BATCHES,
    RECORDS_DUPLICATE,
    RECORDS_INGESTED,
    RECORDS_RECEIPTED,
    RECORDS_STORED,
    VERIFICATIONS,
)
from node.pipeline.batches import CheckedBatch, IncomingBatch, IngestResult
from node.pipeline.ingest import Ingest
from node.services.exchange import ExchangeApplication
from node.services.query import QueryApplication, VerifyAnswer, VerifyRequest
from node.storage.unit_of_work import UnitOfWork
from security.identity import Principal


class MeteredIngest(Ingest):
    """The ingest, counted: records ingested / stored / duplicated and batches by result. A subclass, so the
    pipeline itself carries no metrics code (STYLE.md §6) and both ingest paths (gRPC and the inbound
    queue, which call ``ingest``) are counted."""

    def check(self, principal: Principal, batch: IncomingBatch) -> CheckedBatch:
        try:
            return super().check(principal, batch)
        except Exception as error:
            BATCHES.labels(type(error).__name__).inc()
            raise

    def store(self, principal: Principal, checked: CheckedBatch,
              joined: Callable[[UnitOfWork, IngestResult], None] | None = None) -> IngestResult:
        try:
            result = super().store(principal, checked, joined)
        except Exception as error:
            BATCHES.labels(type(error).__name__).inc()
            raise
        BATCHES.labels("OK").inc()
        RECORDS_INGESTED.inc(len(checked.batch.records))
        RECORDS_STORED.inc(result.accepted)
        RECORDS_DUPLICATE.inc(result.duplicates)
        return result


class MeteredExchange(ExchangeApplication):
    """The exchange use cases, counted: records receipted."""

    def receipt(self, principal: Principal, batch_id: str, receiver_code: str, record_ids: Sequence[str], kid: str,
                signature: bytes) -> bool:
        fresh = super().receipt(principal, batch_id, receiver_code, record_ids, kid, signature)
        if fresh:
            RECORDS_RECEIPTED.inc(len(set(record_ids)))
        return fresh


class MeteredQuery(QueryApplication):
    """Verifications counted per consumer and result (``exnode_verifications_total``): the enumeration
    defence's alert watches each consumer's MISMATCH ratio (ops/prometheus/alerts.yml)."""

    def verify_claim(self, principal: Principal, request: VerifyRequest,
                     then: Callable[[UnitOfWork, VerifyAnswer], Any] | None = None,
                     prepare: Callable[[VerifyAnswer], Any] | None = None) -> VerifyAnswer:
        try:
            answer = super().verify_claim(principal, request, then, prepare)
        except Exception as error:
            VERIFICATIONS.labels(principal.department_code, f"REFUSED_{type(error).__name__}").inc()
            raise
        return _counted(principal, answer)

    async def verify_claim_async(self, principal: Principal, request: VerifyRequest,
                                 then: Callable[[UnitOfWork, VerifyAnswer], Any] | None = None,
                                 prepare: Callable[[VerifyAnswer], Any] | None = None) -> VerifyAnswer:
        try:
            answer = await super().verify_claim_async(principal, request, then, prepare)
        except Exception as error:
            VERIFICATIONS.labels(principal.department_code, f"REFUSED_{type(error).__name__}").inc()
            raise
        return _counted(principal, answer)


def _counted(principal: Principal, answer: VerifyAnswer) -> VerifyAnswer:
    for _, result in answer.answers:
        VERIFICATIONS.labels(principal.department_code, result.value).inc()
    return answer
