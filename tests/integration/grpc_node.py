"""A real node (bootstrap + aio gRPC server) on a background thread, for tests that talk gRPC."""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import grpc

from node import bootstrap
from node.bootstrap import Node
from node.config import Config, ServerSection, load_config
from node.grpc.server import build_server
from security.identity import create_dev_issuer_key, issue_dev_token
from security.keys import KeyStore
from tests.conftest import PROVIDER


def make_config(data_dir: Path, database_url: str = "", **server: object) -> Config:
    """A node config trusting the development issuer, so tests can mint tokens."""
    data_dir.mkdir(parents=True, exist_ok=True)
    KeyStore.create(data_dir / "keys")
    create_dev_issuer_key(data_dir / "keys")
    config = load_config(data_dir, environ={})
    config = replace(config, database=replace(config.database, url=database_url),
                     auth=replace(config.auth, trust_dev_issuer=True))
    if server:
        config = replace(config, server=replace(ServerSection(), **server))
    return config


class _Call(collections.namedtuple("_Call", ("method", "timeout", "metadata", "credentials", "wait_for_ready",
                                             "compression")), grpc.ClientCallDetails):
    pass


class BearerInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                        grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds ``authorization: Bearer <token>`` to every call of a channel."""

    def __init__(self, token: str) -> None:
        self.token = token

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = [*(details.metadata or ()), ("authorization", f"Bearer {self.token}")]
        return _Call(details.method, details.timeout, metadata, details.credentials, details.wait_for_ready,
                     details.compression)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    intercept_unary_stream = intercept_unary_unary
    intercept_stream_unary = intercept_unary_unary
    intercept_stream_stream = intercept_unary_unary


class RunningNode:
    def __init__(self, config: Config, clock: object | None = None) -> None:
        kwargs = {"clock": clock} if clock else {}
        self.config = config
        self.node: Node = bootstrap.build(config, **kwargs)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.server, self.port, self.health = asyncio.run_coroutine_threadsafe(
            build_server(self.node, "127.0.0.1:0"), self.loop).result(30)
        self.address = f"127.0.0.1:{self.port}"
        self.raw_channel = grpc.insecure_channel(self.address, options=[
            ("grpc.max_send_message_length", 64 * 1024 * 1024)])
        self.channel = self.channel_as(PROVIDER, ["catalog_admin"])
        """Authenticated as a catalog_admin of the conftest resources' provider."""

    def token(self, dept: str = PROVIDER, roles: Iterable[str] = ("catalog_admin",), subject: str = "tester",
              **kwargs: object) -> str:
        return issue_dev_token(self.config.keys_dir, self.config.node.id, self.config.audience, subject=subject,
                               department_code=dept, roles=roles, **kwargs)  # type: ignore[arg-type]

    def channel_as(self, dept: str = PROVIDER, roles: Iterable[str] = ("catalog_admin",),
                   subject: str = "tester") -> grpc.Channel:
        return grpc.intercept_channel(self.raw_channel, BearerInterceptor(self.token(dept, roles, subject)))

    def start_rpc(self, timeout_s: float = 10.0) -> None:
        """``Node.start_rpc``, then wait until this node consumes its request queue and its reply queue: the
        broker drops a request published to ``exnode.<node>.rpc`` before that queue exists (the default
        exchange routes it nowhere), so a test's first request to a node just started went unanswered
        (a household check stayed PENDING, "no answer"), now and then even on a quiet machine."""
        from node.grpc.server import _status_name

        self.node.start_rpc(_status_name, timeout_s=timeout_s)
        until = time.monotonic() + 60
        while not (self.node.rpc_responder.stats.connected and self.node.rpc_client.stats.connected):
            if time.monotonic() > until:
                raise AssertionError(f"node {self.config.node.id}: its request queues are not consumed in 60 s")
            time.sleep(0.05)

    def run(self, coroutine: object, timeout: float = 30) -> object:
        """Run a coroutine on the node's event loop (where the gRPC server and its health servicer live)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)  # type: ignore[arg-type]

    def close(self) -> None:
        self.raw_channel.close()
        asyncio.run_coroutine_threadsafe(self.server.stop(1), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.node.close()
