"""``exnode bench fanout``: catalog events per second through the fanout publisher after a large import.

Why: an import of 10^5 resources writes 10^5 PUBLISHED events at once, and the publisher must put them
on exnode.<node>.catalog quickly (it waited for one confirm per message: ~1,100 msg/s). This imports N
published resources into a fresh SQLite catalog, binds a durable queue to the node's fanout exchange (a
partner department's), and times the real CatalogFanoutPublisher from start until its confirmed cursor
reaches the last event. The raw limit of the same run: pika publishing the same number of messages of
the same size into the same queue with the same window of unconfirmed messages (node/bench/relay.py).
"""

from __future__ import annotations

import queue as queue_module
import resource
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pika

from adapters.rabbit.fanout import CatalogFanoutPublisher
from node.bench.catalog import CHUNK, IMPORTER, Generator
from node.bench.relay import _raw_publisher
from node.services.catalog import CatalogApplication
from node.services.catalog_feed import CatalogFeed, FeedFanoutSource, event_document
from node.storage.catalog_repository import EventFilter
from node.storage.database import make_engine, migrate
from node.storage.unit_of_work import SqlUnitOfWorkFactory
from security.policy import Policy

AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"
WINDOW = 1_000


def _emit(name: str, value: float | int) -> None:
    print(f"{name}={value:.3f}" if isinstance(value, float) else f"{name}={value}", flush=True)


def _progress(message: str) -> None:
    print(f"[bench fanout] {message}", file=sys.stderr, flush=True)


def main(count: int = 100_000, url: str = AMQP) -> int:
    node_id = f"bench{uuid.uuid4().hex[:8]}"
    exchange, bound = f"exnode.{node_id}.catalog", f"exnode.{node_id}.catalog-bench"
    with tempfile.TemporaryDirectory(prefix="exnode-bench-fanout-") as directory:
        database = f"sqlite:///{Path(directory) / 'fanout.db'}"
        migrate(database)
        engine = make_engine(database)
        uow = SqlUnitOfWorkFactory(engine)
        app = CatalogApplication(uow)
        generator, codes = Generator(), []
        for start in range(0, count, CHUNK):
            entries = [generator.one(codes) for _ in range(min(CHUNK, count - start))]
            app.import_resources(IMPORTER, entries, publish=True)
            codes.extend(e.code for e in entries)
            _progress(f"imported {len(codes)}/{count}")
        feed = CatalogFeed(uow, Policy(), app.macs, node_id)
        last = _last_position(uow)  # the cursor passes the CREATED events too; `count` PUBLISHED ones go out
        sample = feed.read(0, EventFilter(public_only=True), 1).events[0]
        body_size = len(str(event_document(sample, node_id)).encode())
        with pika.BlockingConnection(pika.URLParameters(url)) as connection:
            channel = connection.channel()
            channel.exchange_declare(exchange, exchange_type="fanout", durable=True)
            channel.queue_declare(bound, durable=True)
            channel.queue_bind(bound, exchange)
        try:
            wake = threading.Event()
            publisher = CatalogFanoutPublisher(url, node_id, FeedFanoutSource(feed, app.clock), wake=wake, poll_s=0.2)
            began = time.perf_counter()
            publisher.start()
            while feed.publisher_cursor() < last:
                time.sleep(0.02)
            seconds = time.perf_counter() - began
            publisher.stop()
            _purge(url, bound)
            go, results = threading.Event(), queue_module.Queue()
            go.set()
            raw_began = time.perf_counter()
            _raw_publisher(url, bound, count, body_size, 120, WINDOW, go, results)
            raw = results.get(timeout=600)
            raw_seconds = (raw["confirmed_ns"] - raw["started_ns"]) / 1e9 or time.perf_counter() - raw_began
        finally:
            with pika.BlockingConnection(pika.URLParameters(url)) as connection:
                channel = connection.channel()
                channel.queue_delete(bound)
                channel.exchange_delete(exchange)
            engine.dispose()
    _emit("fanout_messages", count)
    _emit("fanout_seconds", seconds)
    _emit("fanout_msgs_per_s", count / seconds)
    _emit("raw_confirmed_msgs_per_s", count / raw_seconds)
    _emit("fanout_vs_raw_ratio", raw_seconds / seconds)
    _emit("peak_rss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return 0


def _last_position(uow: SqlUnitOfWorkFactory) -> int:
    with uow() as unit:
        return unit.catalog.last_event_position()


def _purge(url: str, name: str) -> None:
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        connection.channel().queue_purge(name)
