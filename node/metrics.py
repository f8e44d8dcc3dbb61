"""Prometheus metrics of the node and the interceptor that measures every RPC. Domain code never
imports this module; the entry points and the bootstrap do.

Two kinds: counters of what this process did (RPCs, records ingested, messages relayed), incremented
where it happens; and the state of the node's database and broker (outbox depth and age, audit chain,
catalog size, broker connection), read when Prometheus scrapes (``NodeCollector``), so a replica that
just started reports the same backlog as the one that has run for a month. The README lists every
metric; tests/e2e/test_observability.py checks the dashboard and alert rules name only these.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import grpc
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from node.grpc.handlers import Behaviour, wrap_handler
from node.services.exchange import CheckedBatch, ExchangeApplication, IncomingBatch, IngestResult
from node.storage.audit_repository import AuditRepository
from node.storage.exchange_repository import DEAD, ExchangeRepository
from node.storage.tables import outbox
from security.audit import VerifyResult
from security.identity import Principal

if TYPE_CHECKING:
    from node.app import Node

log = logging.getLogger(__name__)

RPC_TOTAL = Counter("exnode_rpc_total", "gRPC calls served, by method and status code", ["method", "code"])
RPC_SECONDS = Histogram(
    "exnode_rpc_duration_seconds", "gRPC call latency, by method", ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RECORDS_INGESTED = Counter("exnode_records_ingested_total",
                           "Records in batches the node accepted (gRPC or inbound queue), duplicates included")
RECORDS_STORED = Counter("exnode_records_stored_total", "New records stored (and put in the outbox) by ingest")
RECORDS_DUPLICATE = Counter("exnode_records_duplicate_total", "Records received again with the same content")
BATCHES = Counter("exnode_ingest_batches_total", "Batches offered for ingest, by result (OK or the refusal)",
                  ["result"])
RECORDS_RECEIPTED = Counter("exnode_records_receipted_total", "Records receivers acknowledged with a signed receipt")
AUDIT_VERIFY_OK = Gauge("exnode_audit_verify_ok",
                        "1 when the last verification of the audit chain passed, 0 when it found a problem")
AUDIT_VERIFY_TIME = Gauge("exnode_audit_verify_timestamp_seconds",
                          "Unix time of the last verification of the audit chain (0: not verified since start)")


def _code_of(context: grpc.aio.ServicerContext, error: BaseException | None) -> str:
    code = context.code()
    if code is None:
        return "OK" if error is None else "UNKNOWN"
    return code.name if isinstance(code, grpc.StatusCode) else str(code)


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        return wrap_handler(await continuation(handler_call_details), _single(method), _stream(method))


def _single(method: str) -> Callable[[Behaviour], Behaviour]:
    def wrap(behaviour: Behaviour) -> Behaviour:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            start, error = time.perf_counter(), None
            try:
                return await behaviour(request, context)
            except BaseException as caught:
                error = caught
                raise
            finally:
                RPC_SECONDS.labels(method).observe(time.perf_counter() - start)
                RPC_TOTAL.labels(method, _code_of(context, error)).inc()

        return call

    return wrap


def _stream(method: str) -> Callable[[Behaviour], Behaviour]:
    def wrap(behaviour: Behaviour) -> Behaviour:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            start, error = time.perf_counter(), None
            try:
                async for item in behaviour(request, context):
                    yield item
            except BaseException as caught:
                error = caught
                raise
            finally:
                RPC_SECONDS.labels(method).observe(time.perf_counter() - start)
                RPC_TOTAL.labels(method, _code_of(context, error)).inc()

        return call

    return wrap


class MeteredExchange(ExchangeApplication):
    """The exchange use cases, counted: records ingested / stored / duplicated, batches by result and
    records receipted. A subclass, so the pipeline itself carries no metrics code (STYLE.md §6) and both
    ingest paths (gRPC and the inbound queue, which call ``ingest``) are counted."""

    def check(self, principal: Principal, batch: IncomingBatch) -> CheckedBatch:
        try:
            return super().check(principal, batch)
        except Exception as error:
            BATCHES.labels(type(error).__name__).inc()
            raise

    def store(self, principal: Principal, checked: CheckedBatch) -> IngestResult:
        try:
            result = super().store(principal, checked)
        except Exception as error:
            BATCHES.labels(type(error).__name__).inc()
            raise
        BATCHES.labels("OK").inc()
        RECORDS_INGESTED.inc(len(checked.batch.records))
        RECORDS_STORED.inc(result.accepted)
        RECORDS_DUPLICATE.inc(result.duplicates)
        return result

    def receipt(self, principal: Principal, batch_id: str, receiver_code: str, record_ids: Sequence[str], kid: str,
                signature: bytes) -> bool:
        fresh = super().receipt(principal, batch_id, receiver_code, record_ids, kid, signature)
        if fresh:
            RECORDS_RECEIPTED.inc(len(set(record_ids)))
        return fresh


def record_audit_verification(result: VerifyResult) -> None:
    """The outcome of a verification of the whole chain (daily housekeeping, ``exnode audit verify``)."""
    AUDIT_VERIFY_OK.set(1 if result.ok else 0)
    AUDIT_VERIFY_TIME.set(time.time())


class NodeCollector(Collector):
    """The node's state, read from its database and its relay threads at each scrape.

    The queries are cheap: the pending outbox rows through ``ix_outbox_pending``, the audit chain's
    head row, the catalog's count by status. A database that does not answer is reported as
    ``exnode_database_up 0`` rather than failing the scrape."""

    def __init__(self, node: Node, clock: Callable[[], dt.datetime] | None = None) -> None:
        self.node = node
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))

    def describe(self) -> list[Metric]:
        return []  # collected on demand only: registering must not query the database

    def collect(self) -> Iterator[Metric]:
        yield from self._relay()
        try:
            yield from self._database()
            up = 1.0
        except Exception as error:
            log.warning("metrics: the database did not answer: %s", error)
            up = 0.0
        yield GaugeMetricFamily("exnode_database_up", "1 when the node's database answered the last scrape", up)

    def _relay(self) -> Iterator[Metric]:
        dispatcher, inbound = self.node.dispatcher, self.node.inbound
        stats = dispatcher.stats if dispatcher is not None else None
        yield GaugeMetricFamily("exnode_broker_connected",
                                "1 while the outbox dispatcher holds an open broker connection",
                                1.0 if stats is not None and stats.connected else 0.0)
        for name, documentation, value in (
                ("exnode_relay_messages_published", "Record messages published to the broker (retries included)",
                 stats.published if stats else 0),
                ("exnode_relay_messages_confirmed", "Record messages the broker confirmed (publisher confirms)",
                 stats.confirmed if stats else 0),
                ("exnode_relay_messages_nacked", "Record messages the broker refused (retried with backoff)",
                 stats.nacked if stats else 0),
                ("exnode_broker_reconnects", "Times the dispatcher connected to the broker again",
                 stats.reconnects if stats else 0)):
            yield CounterMetricFamily(name, documentation, value=value)
        dead = CounterMetricFamily("exnode_dead_letters", "Messages sent to the node's dead-letter exchange, by source",
                                   labels=["source"])
        dead.add_metric(["outbox"], stats.dead_lettered if stats else 0)
        dead.add_metric(["inbound"], inbound.dead_lettered if inbound is not None else 0)
        yield dead
        yield CounterMetricFamily("exnode_inbound_batches_accepted",
                                  "Batches taken from the inbound queue and stored",
                                  value=inbound.accepted if inbound is not None else 0)

    def _database(self) -> Iterator[Metric]:
        now = self.clock()
        node = self.node
        with node.engine.connect() as connection:
            depth, oldest = ExchangeRepository(connection).depth()
            dead_rows = connection.execute(select(func.count()).select_from(outbox).where(
                outbox.c.state == DEAD)).scalar_one()
            head = AuditRepository(connection).head()
        counts = node.catalog.counts()
        yield GaugeMetricFamily("exnode_outbox_pending_messages", "Outbox messages waiting for a broker confirm", depth)
        yield GaugeMetricFamily("exnode_outbox_oldest_pending_age_seconds",
                                "Age of the oldest message still waiting in the outbox (0 when empty)",
                                max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0)
        yield GaugeMetricFamily("exnode_outbox_dead_messages", "Outbox messages dead-lettered after max_attempts",
                                dead_rows)
        yield GaugeMetricFamily("exnode_audit_chain_last_sequence", "Sequence number of the newest audit entry",
                                head.last_sequence)
        yield GaugeMetricFamily("exnode_audit_last_checkpoint_age_seconds",
                                "Seconds since the newest signed audit checkpoint (-1: none yet)",
                                (now - head.last_checkpoint_at).total_seconds() if head.last_checkpoint_at else -1.0)
        resources = GaugeMetricFamily("exnode_catalog_resources", "Resources in the catalog, by status",
                                      labels=["status"])
        for status in ("DRAFT", "PUBLISHED", "RETIRED"):
            resources.add_metric([status], counts.get(status, 0))
        yield resources
