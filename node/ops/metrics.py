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
from collections.abc import Callable, Iterator

from prometheus_client import Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from catalog.workdays import beijing_date, start_of
from node.ops.observed import Observed
from security.audit import VerifyResult

log = logging.getLogger(__name__)

RECORDS_INGESTED = Counter("exnode_records_ingested_total",
                           "Records in batches the node accepted (gRPC or inbound queue), duplicates included")
RECORDS_STORED = Counter("exnode_records_stored_total", "New records stored (and put in the outbox) by ingest")
RECORDS_DUPLICATE = Counter("exnode_records_duplicate_total", "Records received again with the same content")
BATCHES = Counter("exnode_ingest_batches_total", "Batches offered for ingest, by result (OK or the refusal)",
                  ["result"])
VERIFICATIONS = Counter("exnode_verifications_total", "Claims verified (核验), by consumer department and result "
                        "(MATCH, MISMATCH, NO_RECORD, or REFUSED_<error> for a refused call)",
                        ["consumer", "result"])
RECORDS_RECEIPTED = Counter("exnode_records_receipted_total", "Records receivers acknowledged with a signed receipt")
AUDIT_VERIFY_OK = Gauge("exnode_audit_verify_ok",
                        "1 when the last verification of the audit chain passed, 0 when it found a problem")
AUDIT_VERIFY_TIME = Gauge("exnode_audit_verify_timestamp_seconds",
                          "Unix time of the last verification of the audit chain (0: not verified since start)")


def record_audit_verification(result: VerifyResult) -> None:
    """The outcome of a verification of the whole chain (daily housekeeping, ``exnode audit verify``)."""
    AUDIT_VERIFY_OK.set(1 if result.ok else 0)
    AUDIT_VERIFY_TIME.set(time.time())


class NodeCollector(Collector):
    """The node's state, read from its database and its relay threads at each scrape.

    The queries are cheap: the pending outbox rows through ``ix_outbox_pending``, the audit chain's
    head row, the catalog's count by status. A database that does not answer is reported as
    ``exnode_database_up 0`` rather than failing the scrape."""

    def __init__(self, node: Observed, clock: Callable[[], dt.datetime] | None = None) -> None:
        self.node = node
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))

    def describe(self) -> list[Metric]:
        return []  # collected on demand only: registering must not query the database

    def collect(self) -> Iterator[Metric]:
        yield from self._relay()
        yield from self._calendar()
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
                 stats.nacked if stats else 0)):
            yield CounterMetricFamily(name, documentation, value=value)
        reconnects = CounterMetricFamily("exnode_broker_reconnects", "Times a worker connected to the broker again "
                                         "after losing it (or failing to reach it), by worker", labels=["worker"])
        for name, worker in sorted(self.node.workers().items()):
            worker_stats = getattr(worker, "stats", None)
            if worker_stats is not None and hasattr(worker_stats, "reconnects"):
                reconnects.add_metric([name], worker_stats.reconnects)
        yield reconnects
        dead = CounterMetricFamily("exnode_dead_letters", "Messages sent to the node's dead-letter exchange, by source",
                                   labels=["source"])
        dead.add_metric(["outbox"], stats.dead_lettered if stats else 0)
        dead.add_metric(["inbound"], inbound.dead_lettered if inbound is not None else 0)
        yield dead
        yield CounterMetricFamily("exnode_inbound_batches_accepted",
                                  "Batches taken from the inbound queue and stored",
                                  value=inbound.accepted if inbound is not None else 0)

    def _calendar(self) -> Iterator[Metric]:
        lists = getattr(self.node, "lists", None)
        if lists is None:
            return
        calendar = lists.calendar
        missing = GaugeMetricFamily("exnode_calendar_year_missing",
                                    "1 for a year the holiday calendar lacks (deadlines in it count Saturdays and "
                                    "Sundays only); the current year is always reported", labels=["year"])
        current = beijing_date(self.clock()).year
        for year in sorted({current, *calendar.missing}):
            missing.add_metric([str(year)], 0.0 if calendar.knows(year) else 1.0)
        yield missing

    def _demands(self) -> Iterator[Metric]:
        lists = getattr(self.node, "lists", None)
        if lists is None:
            return
        now = self.clock()
        tomorrow = beijing_date(now) + dt.timedelta(days=1)
        with self.node.uow() as uow:
            counts = uow.lists.stage_counts(now, start_of(tomorrow), start_of(tomorrow + dt.timedelta(days=1)))
        open_ = GaugeMetricFamily("exnode_demands_open", "Demands waiting in a stage with a deadline, by stage",
                                  labels=["stage"])
        overdue = GaugeMetricFamily("exnode_demands_overdue", "Demands whose open stage is past its deadline, by "
                                    "stage (escalated to the coordinator by the daily job)", labels=["stage"])
        due = GaugeMetricFamily("exnode_demands_due_tomorrow", "Demands whose open stage's last day is tomorrow "
                                "(Beijing time), by stage", labels=["stage"])
        for stage in ("COMPLIANCE_REVIEW", "UNDER_REVIEW"):
            stage_counts = counts.get(stage, {})
            open_.add_metric([stage], stage_counts.get("open", 0))
            overdue.add_metric([stage], stage_counts.get("overdue", 0))
            due.add_metric([stage], stage_counts.get("due_tomorrow", 0))
        yield from (open_, overdue, due)

    def _database(self) -> Iterator[Metric]:
        now = self.clock()
        node = self.node
        with node.uow() as uow:
            depth, oldest = uow.exchange.depth()
            dead_rows = uow.exchange.dead_count()
            head = uow.audit.head()
            unstamped, oldest_unstamped = uow.timestamps.backlog()
        counts = node.catalog.counts()
        yield GaugeMetricFamily("exnode_outbox_pending_messages", "Outbox messages waiting for a broker confirm", depth)
        yield GaugeMetricFamily("exnode_outbox_oldest_pending_age_seconds",
                                "Age of the oldest message still waiting in the outbox (0 when empty)",
                                max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0)
        yield GaugeMetricFamily("exnode_tsa_unstamped_roots", "Merkle roots waiting for an RFC 3161 timestamp",
                                unstamped)
        yield GaugeMetricFamily("exnode_tsa_oldest_unstamped_age_seconds",
                                "Age of the oldest root still waiting for a timestamp (0 when none waits)",
                                max(0.0, (now - oldest_unstamped).total_seconds()) if oldest_unstamped else 0.0)
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
        yield from self._demands()
