"""The outbox dispatcher in a process of its own (``exchange.dispatch_process``, the default).

Why: the node is Python, and one process runs one thread of Python at a time. In ``exnode bench relay``
the ingest (checking, masking, sealing, storing records) and the dispatcher (pika framing and publishing
one message per record) took turns on that one lock, so neither ran at its own speed. In a process of
its own the dispatcher publishes while the node ingests, the way the raw-broker baseline's publisher runs
beside its consumer.

What crosses between the two: the node wakes the dispatcher after each commit that wrote outbox rows
(one byte on a pipe; if the pipe is full the dispatcher is busy anyway and polls the outbox); the
dispatcher's counters live in shared memory, so metrics, health and the benchmark read them as before.
Everything else goes through the database, as it does between replicas: the dispatcher process opens
its own engine and claims, publishes and confirms outbox rows exactly as the in-process thread does.

Lifetime: the process ends when the node closes the pipe, and also when the node dies (``kill -9``
closes the pipe too): it stops publishing, records the confirms it has, and exits. Nothing is lost
either way: unconfirmed rows stay PENDING and the next dispatcher publishes them again.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

log = logging.getLogger(__name__)

_FIELDS = ("published", "confirmed", "nacked", "dead_lettered", "reconnects", "connected", "blocked", "beat_ms")


class SharedStats:
    """``DispatcherStats`` over shared memory: the dispatcher process writes, the node reads."""

    def __init__(self, counters: Any) -> None:
        object.__setattr__(self, "_counters", counters)

    def __getattr__(self, name: str) -> Any:
        try:
            value = self._counters[_FIELDS.index(name)]
        except ValueError:
            raise AttributeError(name) from None
        return bool(value) if name in ("connected", "blocked") else value

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in _FIELDS:
            raise AttributeError(name)
        self._counters[_FIELDS.index(name)] = int(value)

    def __repr__(self) -> str:
        return "SharedStats(" + ", ".join(f"{name}={getattr(self, name)}" for name in _FIELDS) + ")"


class DispatcherProcess:
    """The node's handle on its dispatcher process: ``wake``, ``stats``, ``window``, ``stop`` as the
    in-process ``Dispatcher`` has them."""

    def __init__(self, config: Any, log_level: str = "INFO", log_format: str = "json") -> None:
        self.config = config
        self.window = config.exchange.window
        self._context = multiprocessing.get_context("spawn")
        self._counters = self._context.Array("q", len(_FIELDS), lock=False)
        self.stats = SharedStats(self._counters)
        self._log = (log_level, log_format)
        self._process: Any = None
        self._wake: Connection | None = None
        self._stopping = threading.Event()
        self._watch: threading.Thread | None = None

    @property
    def last_beat(self) -> float:
        """The dispatcher process's last loop turn (shared memory; CLOCK_MONOTONIC is system-wide)."""
        return self.stats.beat_ms / 1000

    def running(self) -> bool:
        """The watch that keeps a dispatcher process running is alive."""
        return self._watch is not None and self._watch.is_alive()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        self._stopping.clear()
        self._spawn()
        self._watch = threading.Thread(target=self._watch_process, name="dispatcher-watch", daemon=True)
        self._watch.start()

    def _spawn(self) -> None:
        self.stats.beat_ms = int(time.monotonic() * 1000)  # a new process has its start-up to beat
        reader, writer = self._context.Pipe(duplex=False)
        self._process = self._context.Process(target=_main, args=(self.config, self._counters, reader, *self._log),
                                              name="exnode-dispatcher", daemon=True)
        self._process.start()
        reader.close()
        os.set_blocking(writer.fileno(), False)
        self._wake = writer

    def _watch_process(self) -> None:
        """A dispatcher process that ends while the node runs (a crash, the OOM killer) is started again:
        the outbox keeps what it had not confirmed, so nothing is lost, only delayed. Meanwhile the broker
        counts as disconnected (health: not ready)."""
        delay = 1.0
        while not self._stopping.is_set():
            process = self._process
            multiprocessing.connection.wait([process.sentinel])
            if self._stopping.is_set():
                return
            self.stats.connected = False
            log.error("the dispatcher process ended (exit code %s); starting it again in %.0f s",
                      process.exitcode, delay)
            if self._stopping.wait(delay):
                return
            delay = min(30.0, delay * 2)
            old, self._wake = self._wake, None
            if old is not None:
                old.close()
            self._spawn()

    def wake(self) -> None:
        """New outbox rows were committed (any thread). A full pipe means the dispatcher has wake-ups
        waiting already; it also polls the outbox, so nothing waits for this byte."""
        writer = self._wake
        if writer is None:
            return
        try:
            writer.send_bytes(b"w")
        except (BlockingIOError, BrokenPipeError, OSError):
            pass

    def stop(self, timeout: float = 10.0) -> None:
        """Close the pipe (the dispatcher records its confirms and exits); terminate it if it does not."""
        self._stopping.set()
        writer, self._wake = self._wake, None
        if writer is not None:
            writer.close()
        process = self._process
        if process is None:
            return
        process.join(timeout)
        if process.is_alive():
            log.warning("the dispatcher process did not stop in %.0f s; terminating it", timeout)
            process.terminate()
            process.join(5)
        if self._watch is not None:
            self._watch.join(timeout)
            self._watch = None
        self.stats.connected = False

    def cpu_seconds(self) -> float:
        """CPU time the dispatcher process used so far (Linux ``/proc``; 0 elsewhere)."""
        pid = self.pid
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError, TypeError):
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(self) -> float:
        """The dispatcher process's peak resident memory (Linux ``/proc``; 0 elsewhere)."""
        try:
            with open(f"/proc/{self.pid}/status", encoding="ascii") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except (OSError, ValueError):
            pass
        return 0.0


def _terminated(_signal: int, _frame: Any) -> None:
    raise SystemExit(0)  # ends the wait below; the dispatcher then stops as on a closed pipe


def _main(config: Any, counters: Any, wake: Connection, log_level: str, log_format: str) -> None:
    """The dispatcher process: its own engine and outbox over the node's database, the same Dispatcher."""
    from node.ops.logs import configure
    from node.ops.startup import tune_gc
    from node.pipeline.outbox import build_dispatcher
    from node.services.catalog import utc_now
    from node.services.lists import ListsApplication
    from node.storage.database import make_engine
    from node.storage.secrecy import Sealer
    from node.storage.unit_of_work import SqlUnitOfWorkFactory
    from security.keys import KeyStore
    from security.policy import Policy

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the node decides
    configure(log_level, log_format)
    engine = make_engine(config.database_url, pool_size=2)
    uow = SqlUnitOfWorkFactory(engine, Sealer(KeyStore.load(config.keys_dir)))  # outbox bodies are sealed
    lists = ListsApplication(uow, utc_now, Policy(node_department=config.node.department_code))
    dispatcher = build_dispatcher(config, uow, utc_now, lists, stats=SharedStats(counters))  # type: ignore[arg-type]
    signal.signal(signal.SIGTERM, _terminated)
    tune_gc(config.server)  # every message allocates properties and frames, as every record does in the node
    dispatcher.start()
    try:
        while True:
            try:
                wake.recv_bytes()
            except (EOFError, OSError):
                break  # the node closed the pipe, or died
            dispatcher.wake()
    finally:
        dispatcher.stop()
        engine.dispose()
        sys.stdout.flush()
