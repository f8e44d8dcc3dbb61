"""A real node (bootstrap + aio gRPC server) on a background thread, for tests that talk gRPC."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from pathlib import Path

import grpc

from node import app as bootstrap
from node.app import Node
from node.config import Config, ServerSection, load_config
from node.server import build_server
from security.keys import KeyStore


def make_config(data_dir: Path, database_url: str = "", **server: object) -> Config:
    data_dir.mkdir(parents=True, exist_ok=True)
    KeyStore.create(data_dir / "keys")
    config = load_config(data_dir, environ={})
    config = replace(config, database=replace(config.database, url=database_url))
    if server:
        config = replace(config, server=replace(ServerSection(), **server))
    return config


class RunningNode:
    def __init__(self, config: Config, clock: object | None = None) -> None:
        kwargs = {"clock": clock} if clock else {}
        self.node: Node = bootstrap.build(config, **kwargs)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.server, self.port, _ = asyncio.run_coroutine_threadsafe(
            build_server(self.node, "127.0.0.1:0"), self.loop).result(30)
        self.address = f"127.0.0.1:{self.port}"
        self.channel = grpc.insecure_channel(self.address, options=[
            ("grpc.max_send_message_length", 64 * 1024 * 1024)])

    def close(self) -> None:
        self.channel.close()
        asyncio.run_coroutine_threadsafe(self.server.stop(1), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.node.close()
