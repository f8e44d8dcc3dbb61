"""Per-dependency gRPC health (grpc.health.v1), kept current by a background task of ``exnode serve``.

Service names (what ``Health/Check`` and ``Health/Watch`` answer for):

- ``exnode.liveness``: the process serves calls: SERVING until shutdown begins, unless a required
  background worker (audit writer, dispatcher, inbound consumer, catalog fanout and uplink) died or is
  stuck (``node/ops/workers.py``; ``exnode_worker_up`` names it). A probe that restarts the node should look
  at this one only.
- ``exnode.database``: the database answers a trivial query (within ``CHECK_TIMEOUT_S``).
- ``exnode.broker``: the outbox dispatcher holds an open RabbitMQ connection that the broker does not
  block (``connection.blocked``: a memory or disk alarm); without a dispatcher in this process: a short
  probe connection succeeds.
- ``exnode.readiness``: database, broker and workers, and, when the node answers other nodes (``exchange.dispatch``),
  its request queue and its reply queue consumed: the node can take records, relay them and answer
  requests routed to it. Why the queues: until the responder consumes ``exnode.<node>.rpc`` a request of
  another node is returned as unroutable (a household check's target UNDELIVERED) or waits for the
  deadline, so a node that just started is not ready before they are.
- ``""`` (overall) and every exnode.v1 service name: the node answers its RPCs, i.e. the database is
  reachable. A node whose broker is down stays SERVING here: it keeps serving the catalog and the lists
  and keeps accepting records into the outbox, which drains when the broker returns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

import pika
from grpc_health.v1 import health, health_pb2
from prometheus_client import Gauge

from node.ops.observed import Observed
from node.ops.workers import workers_up

log = logging.getLogger(__name__)
LIVENESS, READINESS, DATABASE, BROKER = "exnode.liveness", "exnode.readiness", "exnode.database", "exnode.broker"
DEPENDENCIES = (LIVENESS, READINESS, DATABASE, BROKER)
CHECK_INTERVAL_S = 2.0
CHECK_TIMEOUT_S = 5.0
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
WORKER_UP = Gauge("exnode_worker_up", "1 while a background worker of the node is alive and not stuck", ["worker"])


def database_answers(node: Observed) -> bool:
    try:
        node.uow.ping()
        return True
    except Exception as error:
        log.debug("health: database check failed: %s", error)
        return False


def broker_answers(node: Observed) -> bool:
    """The dispatcher's own connection when it runs here; otherwise a short-lived probe connection."""
    if node.dispatcher is not None:  # a broker that blocks publishing (an alarm) relays nothing: not ready
        return node.dispatcher.stats.connected and not node.dispatcher.stats.blocked
    for url in node.config.rabbitmq.addresses:
        params = pika.URLParameters(url)
        params.connection_attempts, params.socket_timeout, params.blocked_connection_timeout = 1, 3, 3
        try:
            with pika.BlockingConnection(params):
                return True
        except Exception as error:
            log.debug("health: broker check failed: %s", error)
    return False


RPC_WORKERS = ("rpc", "rpc_client")
"""The workers (``Node.workers()`` names) whose broker session readiness waits for: they consume queues."""


def exchange_consuming(node: Observed) -> bool | None:
    """Every request/reply worker of the node holds a session that consumes its queue; None: it runs none."""
    workers = [worker for name, worker in node.workers().items() if name in RPC_WORKERS]
    return all(worker.stats.connected for worker in workers) if workers else None


class HealthMonitor:
    """Checks the dependencies every ``interval`` seconds and sets the statuses; logs each change."""

    def __init__(self, node: Observed, servicer: health.aio.HealthServicer, services: Iterable[str],
                 interval: float = CHECK_INTERVAL_S) -> None:
        self.node = node
        self.servicer = servicer
        self.services = ("", *services)
        self.interval = interval
        self.state: dict[str, bool] = {}
        self.workers: dict[str, bool] = {}
        self.consuming: bool | None = None

    async def check(self) -> dict[str, bool]:
        database = await self._timed(database_answers)
        broker = await self._timed(broker_answers)
        workers = self.check_workers()
        alive = all(workers.values())
        consuming = exchange_consuming(self.node)
        if consuming is not None and consuming != self.consuming:  # at start INFO (the sessions are opening), later a lost one WARNING
            level = logging.WARNING if not consuming and self.consuming is not None else logging.INFO
            log.log(level, "health: request and reply queues %s", "consumed" if consuming else
                    "not consumed: readiness waits for them", extra={"dependency": "rpc", "serving": consuming})
            self.consuming = consuming
        state = {LIVENESS: alive, DATABASE: database, BROKER: broker,
                 READINESS: alive and database and broker and consuming is not False}
        state.update({name: database for name in self.services})
        for name, ok in state.items():
            if self.state.get(name) != ok:
                await self.servicer.set(name, SERVING if ok else NOT_SERVING)
                if name in (DATABASE, BROKER, LIVENESS) and name in self.state:
                    log.log(logging.INFO if ok else logging.WARNING, "health: %s is %s", name,
                            "SERVING" if ok else "NOT_SERVING", extra={"dependency": name, "serving": ok})
        self.state = state
        return state

    def check_workers(self) -> dict[str, bool]:
        """Each worker's state into ``exnode_worker_up``; a change is logged, naming the worker."""
        workers = workers_up(self.node.workers(), self.node.config.server.worker_stall_s)
        for name, up in workers.items():
            WORKER_UP.labels(name).set(1 if up else 0)
            if self.workers.get(name, True) != up:
                log.log(logging.INFO if up else logging.ERROR, "worker %s is %s", name,
                        "up again" if up else "dead or stuck: liveness is NOT_SERVING",
                        extra={"worker": name, "up": up})
        self.workers = workers
        return workers

    async def _timed(self, probe: Callable[[Observed], bool]) -> bool:
        """A probe that hangs (a database host that drops packets) counts as a failure after the timeout."""
        try:
            return await asyncio.wait_for(asyncio.to_thread(probe, self.node), CHECK_TIMEOUT_S)
        except TimeoutError:
            return False

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:
                log.exception("health check failed")
            await asyncio.sleep(self.interval)
