"""``exnode serve``: the gRPC server (aio), standard health checking and reflection, and /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import grpc
from exnode.v1 import catalog_pb2, catalog_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from node.app import Node
from node.grpc.catalog_servicer import CatalogServicer
from node.grpc.errors import ErrorMappingInterceptor
from node.metrics import CATALOG_RESOURCES, MetricsInterceptor

log = logging.getLogger(__name__)
SERVICES = (catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"].full_name,)


def split_host_port(address: str, key: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{key}: {address!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


async def build_server(node: Node, listen: str) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    limit = node.config.server.max_message_bytes
    server = grpc.aio.server(
        interceptors=[MetricsInterceptor(), ErrorMappingInterceptor()],
        options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", 64 * 1024 * 1024),
                 ("grpc.so_reuseport", 0)],
    )
    catalog_pb2_grpc.add_CatalogServiceServicer_to_server(CatalogServicer(node.catalog), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server)
    port = server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"server.listen: cannot listen on {listen}")
    await server.start()
    for name in ("", *SERVICES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port, health_servicer


async def _refresh_gauges(node: Node) -> None:
    while True:
        counts = await asyncio.to_thread(node.catalog.counts)
        for status in ("DRAFT", "PUBLISHED", "RETIRED"):
            CATALOG_RESOURCES.labels(status).set(counts.get(status, 0))
        await asyncio.sleep(15)


async def serve(node: Node, listen: str, metrics_listen: str) -> None:
    """Run until SIGINT or SIGTERM, then stop accepting calls and let running ones finish."""
    host, port = split_host_port(metrics_listen, "server.metrics_listen")
    metrics_server, _ = start_http_server(port, addr=host)
    server, bound, health_servicer = await build_server(node, listen)
    log.info("serving", extra={"listen": listen, "port": bound, "metrics": metrics_listen})
    print(f"exnode: node {node.config.node.id!r} serving gRPC on {listen} (metrics on http://{metrics_listen}/metrics)",
          flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    gauges = asyncio.create_task(_refresh_gauges(node))
    await stop.wait()
    print("exnode: shutting down", flush=True)
    await health_servicer.enter_graceful_shutdown()
    gauges.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await gauges
    await server.stop(node.config.server.shutdown_grace_s)
    metrics_server.shutdown()
    node.close()
