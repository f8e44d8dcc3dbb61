"""Per-dependency gRPC health (grpc.health.v1), kept current by a background task of ``exnode serve``.

Service names (what ``Health/Check`` and ``Health/Watch`` answer for):

- ``exnode.liveness``: the process serves calls. SERVING until shutdown begins; a probe that restarts
  the node should look at this one only.
- ``exnode.database``: the database answers a trivial query (within ``CHECK_TIMEOUT_S``).
- ``exnode.broker``: the outbox dispatcher holds an open RabbitMQ connection (without a dispatcher in
  this process: a short probe connection succeeds).
- ``exnode.readiness``: database and broker both: the node can take records *and* relay them.
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
from sqlalchemy import text

from node.app import Node

log = logging.getLogger(__name__)
LIVENESS, READINESS, DATABASE, BROKER = "exnode.liveness", "exnode.readiness", "exnode.database", "exnode.broker"
DEPENDENCIES = (LIVENESS, READINESS, DATABASE, BROKER)
CHECK_INTERVAL_S = 2.0
CHECK_TIMEOUT_S = 5.0
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


def database_answers(node: Node) -> bool:
    try:
        with node.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except Exception as error:
        log.debug("health: database check failed: %s", error)
        return False


def broker_answers(node: Node) -> bool:
    """The dispatcher's own connection when it runs here; otherwise a short-lived probe connection."""
    if node.dispatcher is not None:
        return node.dispatcher.stats.connected
    params = pika.URLParameters(node.config.rabbitmq.url)
    params.connection_attempts, params.socket_timeout, params.blocked_connection_timeout = 1, 3, 3
    try:
        with pika.BlockingConnection(params):
            return True
    except Exception as error:
        log.debug("health: broker check failed: %s", error)
        return False


class HealthMonitor:
    """Checks the dependencies every ``interval`` seconds and sets the statuses; logs each change."""

    def __init__(self, node: Node, servicer: health.aio.HealthServicer, services: Iterable[str],
                 interval: float = CHECK_INTERVAL_S) -> None:
        self.node = node
        self.servicer = servicer
        self.services = ("", *services)
        self.interval = interval
        self.state: dict[str, bool] = {}

    async def check(self) -> dict[str, bool]:
        database = await self._timed(database_answers)
        broker = await self._timed(broker_answers)
        state = {LIVENESS: True, DATABASE: database, BROKER: broker, READINESS: database and broker}
        state.update({name: database for name in self.services})
        for name, ok in state.items():
            if self.state.get(name) != ok:
                await self.servicer.set(name, SERVING if ok else NOT_SERVING)
                if name in (DATABASE, BROKER) and name in self.state:
                    log.log(logging.INFO if ok else logging.WARNING, "health: %s is %s", name,
                            "SERVING" if ok else "NOT_SERVING", extra={"dependency": name, "serving": ok})
        self.state = state
        return state

    async def _timed(self, probe: Callable[[Node], bool]) -> bool:
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
