"""``exnode serve``: the gRPC server (aio), standard health checking and reflection, and /metrics."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import logging
import signal
import socket
import threading
from collections.abc import Sequence
from typing import Protocol

import grpc
from exnode.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    catalog_pb2,
    catalog_pb2_grpc,
    checks_pb2,
    checks_pb2_grpc,
    exchange_pb2,
    exchange_pb2_grpc,
    keys_pb2,
    keys_pb2_grpc,
    lists_pb2,
    lists_pb2_grpc,
    query_pb2,
    query_pb2_grpc,
)
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import REGISTRY, disable_created_metrics, start_http_server

from node.bootstrap import Node, run_housekeeping
from node.config import ConfigError
from node.grpc.audit_servicer import AuditServicer, KeysServicer
from node.grpc.auth import AuthAuditInterceptor
from node.grpc.catalog_servicer import CatalogServicer
from node.grpc.check_servicer import CheckServicer
from node.grpc.errors import ErrorMappingInterceptor, status_for
from node.grpc.exchange_servicer import ExchangeServicer
from node.grpc.limits import DepartmentLimits, LimitsInterceptor
from node.grpc.lists_servicer import ListsServicer
from node.grpc.metrics import MetricsInterceptor
from node.grpc.query_servicer import QueryServicer
from node.ops.health import BROKER, DATABASE, LIVENESS, READINESS, HealthMonitor
from node.ops.metrics import NodeCollector, record_audit_verification
from node.ops.startup import StartupError, tune_gc
from node.services.audit import AuditWriter, VerificationStopped
from node.services.secrecy import ReencryptionJob
from security.audit import VerifyResult
from security.identity import Principal

log = logging.getLogger(__name__)
SERVICES = (
    catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"].full_name,
    audit_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name,
    keys_pb2.DESCRIPTOR.services_by_name["KeysService"].full_name,
    lists_pb2.DESCRIPTOR.services_by_name["ListsService"].full_name,
    exchange_pb2.DESCRIPTOR.services_by_name["ExchangeService"].full_name,
    query_pb2.DESCRIPTOR.services_by_name["QueryService"].full_name,
    checks_pb2.DESCRIPTOR.services_by_name["CheckService"].full_name,
)
PURGE_INTERVAL_S = 24 * 3600
RPC_THREADS = 32
"""Threads for the use cases RPCs run off the event loop (``asyncio.to_thread``). asyncio's default is
cpu_count + 4 (6 here): calls that wait for a group commit (the quota's, then the audit trail's) would then
queue for a thread, and each group would hold at most six of them. With a thread per concurrent caller
they wait together and share one commit."""


def split_host_port(address: str, key: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{key}: {address!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


async def build_server(node: Node, listen: str, *, audit_writer: AuditWriter | None = None
                       ) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """The node's gRPC server. ``audit_writer`` replaces the node's only in the benchmark that measures
    what the audit trail costs; a serving node always audits."""
    limit = node.config.server.max_message_bytes
    writer = audit_writer or node.audit_writer
    _use_rpc_threads(asyncio.get_running_loop())
    server = grpc.aio.server(
        interceptors=[MetricsInterceptor(), AuthAuditInterceptor(node.verifier, writer, node.catalog.clock),
                      ErrorMappingInterceptor(), LimitsInterceptor(DepartmentLimits(
                          max_streams=node.config.server.department_max_streams,
                          rate_per_s=node.config.server.department_requests_per_s,
                          burst=node.config.server.department_burst))],
        options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", 64 * 1024 * 1024),
                 ("grpc.so_reuseport", 0)],
    )
    catalog_pb2_grpc.add_CatalogServiceServicer_to_server(CatalogServicer(node.catalog, node.feed), server)
    audit_pb2_grpc.add_AuditServiceServicer_to_server(AuditServicer(node.audit, node.policy), server)
    lists_pb2_grpc.add_ListsServiceServicer_to_server(ListsServicer(node.lists, node.disputes, node.objections, node.report), server)
    exchange_pb2_grpc.add_ExchangeServiceServicer_to_server(ExchangeServicer(node.exchange, node.ingest, node.pull), server)
    query_pb2_grpc.add_QueryServiceServicer_to_server(QueryServicer(node.query), server)
    checks_pb2_grpc.add_CheckServiceServicer_to_server(CheckServicer(node.checks), server)
    keys_pb2_grpc.add_KeysServiceServicer_to_server(KeysServicer(node.keys.public, node.keys.active.kid, node.config.node.id, node.policy,
                                                                    node.timestamps, node.query), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server)
    credentials = server_credentials(node)
    ensure_free(listen, "server.listen")
    port = server.add_secure_port(listen, credentials) if credentials else server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"server.listen: cannot listen on {listen}")
    await server.start()
    # Until the first check of the dependencies (exnode serve's HealthMonitor) says otherwise: the
    # process serves, and the database answered the migrations a moment ago; the broker is unknown.
    for name in ("", *SERVICES, LIVENESS, DATABASE):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    for name in (READINESS, BROKER):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    return server, port, health_servicer


def _use_rpc_threads(loop: asyncio.AbstractEventLoop) -> None:
    """Give the loop an executor of RPC_THREADS threads (once: a second server on the loop shares it)."""
    if not getattr(loop, "_exnode_rpc_threads", False):
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(RPC_THREADS, thread_name_prefix="exnode-rpc"))
        loop._exnode_rpc_threads = True  # type: ignore[attr-defined]


def ensure_free(address: str, key: str) -> None:
    """A port another process holds is one line naming the key and the address. gRPC's own bind failure
    is a RuntimeError plus a C-core log line on stderr, so the node tries the address itself first."""
    host, port = split_host_port(address, key)
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise StartupError(f"{key} {address}: cannot resolve {host!r}: {error.strerror}") from None
    for family, kind, proto, _, where in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(where)
            except OSError as error:
                held = " (another exnode serve, or another program, is listening there)" \
                    if error.errno == errno.EADDRINUSE else ""
                raise StartupError(f"{key} {address}: {error.strerror}{held}") from None


def _status_name(error: Exception) -> str | None:
    """A refusal's gRPC status name for answers to other nodes (None: not a refusal, a fault)."""
    code = status_for(error)
    return code.name if code is not None else None


def server_credentials(node: Node) -> grpc.ServerCredentials | None:
    """TLS when server.tls_cert/tls_key are set; mutual TLS (client certificates required) with tls_client_ca."""
    server = node.config.server
    if not server.tls_cert:
        return None
    try:
        chain = node.config.path(server.tls_cert).read_bytes()
        key = node.config.path(server.tls_key).read_bytes()
        client_ca = node.config.path(server.tls_client_ca).read_bytes() if server.tls_client_ca else None
    except OSError as error:
        raise ConfigError(f"server.tls_*: cannot read {error.filename}: {error.strerror}") from None
    return grpc.ssl_server_credentials([(key, chain)], root_certificates=client_ca,
                                       require_client_auth=client_ca is not None)


async def _daily(node: Node) -> None:
    """Housekeeping once at start and then daily (audit retention, expiry of undecided demands), then a
    verification of the whole audit chain for ``exnode_audit_verify_ok``; a failure is logged and
    retried the next day."""
    while True:
        try:
            done = await asyncio.to_thread(run_housekeeping, node)
            if done["purged"] or done["expired"] or done["escalated"] or done["due_tomorrow"]:
                log.info("housekeeping", extra=done)
        except Exception:
            log.exception("housekeeping failed")
        try:
            result = await _verify_interruptibly(node)
            record_audit_verification(result)
            if not result.ok:
                log.error("audit chain verification failed", extra={
                    "first_broken_sequence": result.first_broken_sequence, "problem": result.problem})
        except VerificationStopped:
            return
        except Exception:
            log.exception("audit chain verification could not run")
        await asyncio.sleep(PURGE_INTERVAL_S)


async def _verify_interruptibly(node: Node) -> VerifyResult:
    """The chain verified in a thread that a stopping node ends within a chunk of entries: cancelled, this
    sets the thread's stop flag and waits for it to let go of the database (a Ctrl-C on a node with a
    million-entry trail stopped in about a second, not after the whole walk of 1.5-4 minutes)."""
    stop = threading.Event()
    future = asyncio.ensure_future(asyncio.to_thread(node.audit.verify_recorded,
                                                     Principal.system(node.config.node.id), "daily", stop))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        stop.set()
        with contextlib.suppress(VerificationStopped, Exception):
            await future
        raise


async def _reencrypt(node: Node) -> None:
    """The background re-encryption job (issue 17): rows under newly retired data keys are sealed again
    under live ones while the node serves; a failed round is logged and tried again."""
    job = ReencryptionJob(node.uow, node.catalog.clock)
    while True:
        try:
            moved = await asyncio.to_thread(job.run_once)
            if moved:
                log.info("re-encrypted rows under retired data keys", extra={"rows": moved})
        except Exception:
            log.exception("the re-encryption job failed a round; it tries again")
        await asyncio.sleep(node.config.database.reencrypt_interval_s)


class Listener(Protocol):
    """Another listener served beside gRPC (the web console): started after it, stopped before it."""

    url: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def serve(node: Node, listen: str, metrics_listen: str, also: Sequence[Listener] = ()) -> None:
    """Run until SIGINT or SIGTERM, then stop accepting calls and let running ones finish."""
    # The handlers come first: the health check answers SERVING before start-up ends (the GC tuning, the
    # banner), and a SIGTERM in that window would otherwise kill the process without a clean stop.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    host, port = split_host_port(metrics_listen, "server.metrics_listen")
    disable_created_metrics()  # a *_created series beside every counter doubles the scrape; nothing reads them
    try:
        metrics_server, _ = start_http_server(port, addr=host)
    except OSError as error:
        raise StartupError(f"server.metrics_listen {metrics_listen}: {error.strerror or error}") from None
    collector = NodeCollector(node)
    REGISTRY.register(collector)
    try:
        server, bound, health_servicer = await build_server(node, listen)
    except BaseException:
        REGISTRY.unregister(collector)
        metrics_server.shutdown()
        node.close()
        raise
    if node.config.exchange.dispatch:
        node.start_dispatcher()
        node.start_inbound()
        node.start_uplink()
        node.start_rpc(_status_name)
    if node.config.feed.publish:
        node.start_fanout()
    for listener in also:
        await listener.start()
    if node.timestamps is not None:
        node.timestamps.start()
    monitor = HealthMonitor(node, health_servicer, SERVICES)
    await monitor.check()
    tune_gc(node.config.server)
    log.info("serving", extra={"listen": listen, "port": bound, "metrics": metrics_listen})
    print(f"exnode: node {node.config.node.id!r} serving gRPC on {listen} (metrics on http://{metrics_listen}/metrics)",
          flush=True)
    for listener in also:
        print(f"exnode: console on {listener.url} (sign in with a token of the identity service"
              f"{'; this development node also offers a development sign-in' if node.config.auth.trust_dev_issuer else ''})",
              flush=True)
    tasks = [asyncio.create_task(monitor.run()), asyncio.create_task(_daily(node)),
             asyncio.create_task(_reencrypt(node))]
    await stop.wait()
    print("exnode: shutting down", flush=True)
    await health_servicer.enter_graceful_shutdown()
    for listener in also:
        await listener.stop()
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await server.stop(node.config.server.shutdown_grace_s)
    REGISTRY.unregister(collector)
    metrics_server.shutdown()
    node.close()
