"""One reconnecting worker for every RabbitMQ connection the node holds (DESIGN.md §7, §12).

pika does not reconnect by itself, and a connection belongs to one thread. Each worker is one thread
owning one connection at a time: it connects (to the first broker of its list that answers), runs its
session until the connection breaks, waits with capped exponential backoff and full jitter (so that the
workers of many nodes do not hammer a broker that comes back all at the same moment), and connects again.
The backoff starts afresh only after a connection stayed up for ``stable_s``: a broker that accepts
connections and drops them at once is not retried at full speed.

Logging is by state change, never per retry: one WARNING line when the link is lost (naming the broker,
the error class and its reason, never an empty message and no traceback for an outage), one INFO line
when it is back (after how many attempts, down for how long). An unexpected error of the session itself
(a bug, a database error) is logged with its traceback once, then like an outage.

Two kinds of session: ``BlockingWorker`` (a ``BlockingConnection`` the session drives: consumers, the
uplink) and ``IoloopWorker`` (a ``SelectConnection`` whose ioloop the worker runs: publishers that keep a
window of unconfirmed messages, the outbox dispatcher and the catalog fanout).

Every worker beats (``last_beat``) at least once a second while it lives, connected or not, and counts
its reconnects (``stats``): the node's liveness and ``exnode_broker_reconnects_total{worker}`` read them.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pika
import pika.exceptions
from pika.adapters.select_connection import SelectConnection
from pika.adapters.utils.connection_workflow import AMQPConnectionWorkflowFailed, AMQPConnectorPhaseErrorBase

log = logging.getLogger(__name__)


@dataclass
class WorkerStats:
    connected: bool = False
    blocked: bool = False
    """The broker sent connection.blocked (a memory or disk alarm): publishing waits until it unblocks."""
    reconnects: int = 0
    beat_ms: int = 0
    """``time.monotonic()`` of the last beat, in ms (an int, so it can live in shared memory)."""


def broker_of(url: str) -> str:
    """``user@host:port/vhost`` of an AMQP URL, without its password (what log lines name)."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
    user = f"{parts.username}@" if parts.username else ""
    vhost = parts.path.lstrip("/") or "%2F"
    return f"{user}{host}:{port}/{vhost}"


def describe(error: BaseException) -> str:
    """The error class and its reason, never empty: pika wraps the cause of a failed connection in
    exceptions whose ``str()`` is often ``''``; the innermost cause says what happened."""
    cause = _innermost(error)
    reason = _reason(cause)
    if cause is error:
        return f"{type(error).__name__}: {reason}"
    return f"{type(error).__name__}: {type(cause).__name__}: {reason}"


def _innermost(error: BaseException) -> BaseException:
    for _ in range(10):
        if isinstance(error, AMQPConnectionWorkflowFailed) and error.exceptions:
            error = error.exceptions[-1]
        elif isinstance(error, AMQPConnectorPhaseErrorBase) and isinstance(error.exception, BaseException):
            error = error.exception
        elif len(error.args) == 1 and isinstance(error.args[0], BaseException):
            error = error.args[0]
        else:
            break
    return error


_DEFAULT_REASONS: dict[type, str] = {
    pika.exceptions.AMQPConnectionError: "the broker cannot be reached",
    pika.exceptions.StreamLostError: "the connection was lost",
    socket.timeout: "timed out",
}


def _reason(error: BaseException) -> str:
    if isinstance(error, pika.exceptions.ConnectionClosed | pika.exceptions.ChannelClosed):
        return f"{error.reply_code} {error.reply_text}"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = ": ".join(str(arg) for arg in error.args if arg not in (None, ""))
    return text or _DEFAULT_REASONS.get(type(error), "no reason given")


EXPECTED = (pika.exceptions.AMQPError, OSError, socket.timeout, EOFError)
"""What an outage raises: logged in one line, no traceback."""


class BackoffPolicy:
    """Capped exponential backoff with full jitter; ``reset`` after a stable connection."""

    def __init__(self, initial_s: float = 0.5, max_s: float = 10.0, rng: random.Random | None = None) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self._ceiling = initial_s
        self._rng = rng or random.Random()

    def reset(self) -> None:
        self._ceiling = self.initial_s

    def next_delay(self) -> float:
        delay = self._rng.uniform(self._ceiling / 2, self._ceiling)
        self._ceiling = min(self.max_s, self._ceiling * 2)
        return delay


class ConnectionWorker:
    """The loop: connect, run a session, back off, again, until ``stop``. Subclasses give ``_session``."""

    heartbeat_s = 30
    blocked_connection_timeout_s = 60.0
    stable_s = 30.0
    """A connection that stayed up this long resets the backoff."""

    def __init__(self, name: str, urls: str | Sequence[str], *, stats: WorkerStats | None = None,
                 backoff: BackoffPolicy | None = None, on_error: Callable[[BaseException], None] | None = None) -> None:
        self.name = name
        self.urls = [urls] if isinstance(urls, str) else list(urls)
        if not self.urls:
            raise ValueError("a broker worker needs at least one broker URL")
        self.stats = stats or WorkerStats()
        self.backoff = backoff or BackoffPolicy()
        self.on_error = on_error
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._current = 0
        self._down_since: float | None = None
        self._attempts = 0
        self._logged_unexpected = False

    # -- lifetime ---------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The broker in use (or tried next)."""
        return self.urls[self._current]

    @property
    def last_beat(self) -> float:
        return self.stats.beat_ms / 1000

    def beat(self) -> None:
        self.stats.beat_ms = int(time.monotonic() * 1000)

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def start(self) -> None:
        self._stopping.clear()
        self.beat()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._interrupt()
        if self._thread is not None:
            self._thread.join(timeout)

    def _interrupt(self) -> None:
        """Make a running session return soon (called from another thread by ``stop``)."""

    def parameters(self, url: str) -> pika.URLParameters:
        """The worker's connection settings. A ``heartbeat`` the URL names (``?heartbeat=10``) is kept: it
        bounds how long a link that silently stops passing bytes (a partition, not a refused connection)
        goes unnoticed: pika checks every heartbeat + 5 s and gives up after one whole check interval without
        a byte, so between one and two such intervals; a deployment may want that shorter."""
        params = pika.URLParameters(url)
        if "heartbeat" not in parse_qs(urlsplit(url).query):
            params.heartbeat = self.heartbeat_s
        params.blocked_connection_timeout = self.blocked_connection_timeout_s
        params.connection_attempts = 1
        params.socket_timeout = 5
        return params

    # -- the loop ---------------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopping.is_set():
            self.beat()
            url = self.url
            started = time.monotonic()
            try:
                self._session(self.parameters(url))
                error: BaseException | None = None
            except Exception as caught:
                error = caught
                if self.on_error is not None:
                    self.on_error(caught)
            up_for = time.monotonic() - started if self.stats.connected else 0.0
            was_connected = self.stats.connected
            self.stats.connected = False
            if self._stopping.is_set():
                break
            self._lost(url, error, was_connected)
            if up_for >= self.stable_s:
                self.backoff.reset()
            if len(self.urls) > 1:
                self._current = (self._current + 1) % len(self.urls)
            delay = self.backoff.next_delay()
            self.stats.reconnects += 1
            self._wait(delay)

    def _wait(self, delay: float) -> None:
        """Back off in steps of a second, beating: a worker waiting for its broker is alive."""
        end = time.monotonic() + delay
        while not self._stopping.is_set():
            self.beat()
            left = end - time.monotonic()
            if left <= 0:
                return
            self._stopping.wait(min(1.0, left))

    def connected(self) -> None:
        """The session is ready: counted, and logged if the link was down."""
        self.stats.connected = True
        self.beat()
        if self._down_since is not None:
            log.info("%s: broker link to %s is back after %d attempts (down %.1f s)", self.name,
                     broker_of(self.url), self._attempts, time.monotonic() - self._down_since,
                     extra={"worker": self.name, "broker": broker_of(self.url)})
        self._down_since = None
        self._attempts = 0
        self._logged_unexpected = False

    def _lost(self, url: str, error: BaseException | None, was_connected: bool) -> None:
        self._attempts += 1
        broker = broker_of(url)
        what = describe(error) if error is not None else "the connection closed"
        extra = {"worker": self.name, "broker": broker, "error": what}
        if error is not None and not isinstance(error, EXPECTED) and not self._logged_unexpected:
            self._logged_unexpected = True
            log.error("%s: failed on the link to %s: %s; reconnecting", self.name, broker, what, exc_info=error,
                      extra=extra)
        elif self._down_since is None:
            verb = "lost the broker link to" if was_connected else "cannot reach the broker"
            log.warning("%s: %s %s: %s; retrying with backoff", self.name, verb, broker, what, extra=extra)
        else:
            log.debug("%s: still no broker at %s: %s", self.name, broker, what, extra=extra)
        if self._down_since is None:
            self._down_since = time.monotonic()

    def _session(self, params: pika.URLParameters) -> None:
        raise NotImplementedError


class BlockingWorker(ConnectionWorker):
    """A session over a ``BlockingConnection``: ``serve`` runs until the connection breaks or ``stopping``."""

    def _session(self, params: pika.URLParameters) -> None:
        with pika.BlockingConnection(params) as connection:
            self.serve(connection)

    def serve(self, connection: pika.BlockingConnection) -> None:
        raise NotImplementedError


class IoloopWorker(ConnectionWorker):
    """A session over a ``SelectConnection`` whose ioloop this thread runs. Subclasses open their channel
    in ``on_connection_open`` and call ``connected()`` when ready; other threads reach the loop only through
    ``call_threadsafe``. A beat timer turns with the loop, so a loop blocked in a callback is seen."""

    connection_class: type[SelectConnection] = SelectConnection

    def __init__(self, name: str, urls: str | Sequence[str], **kwargs: Any) -> None:
        super().__init__(name, urls, **kwargs)
        self.connection: SelectConnection | None = None
        self._failure: BaseException | None = None

    def _session(self, params: pika.URLParameters) -> None:
        self._failure = None
        connection = self.connection = self.connection_class(
            params, on_open_callback=self._opened, on_open_error_callback=self._open_failed,
            on_close_callback=self._closed)
        connection.add_on_connection_blocked_callback(self._blocked)
        connection.add_on_connection_unblocked_callback(self._unblocked)
        self._tick(connection)
        try:
            connection.ioloop.start()
        finally:
            self.connection = None
            self.stats.blocked = False
            self.on_session_end()
        if self._failure is not None:
            raise self._failure

    def _tick(self, connection: SelectConnection) -> None:
        self.beat()
        if not self._stopping.is_set():
            connection.ioloop.call_later(1.0, lambda: self._tick(connection))

    def _blocked(self, _connection: SelectConnection, frame: Any) -> None:
        """connection.blocked: the broker raised a memory or disk alarm and stops reading what we publish.
        The node turns not ready (health) and its outbox keeps the records until the alarm clears; pika
        drops the connection after ``blocked_connection_timeout_s`` and the worker tries the next broker."""
        reason = getattr(getattr(frame, "method", None), "reason", "") or "no reason given"
        self.stats.blocked = True
        log.warning("%s: the broker at %s blocks publishing (%s): a memory or disk alarm; records wait in "
                    "the outbox", self.name, broker_of(self.url), reason,
                    extra={"worker": self.name, "broker": broker_of(self.url), "reason": reason})

    def _unblocked(self, _connection: SelectConnection, _frame: Any) -> None:
        self.stats.blocked = False
        log.info("%s: the broker at %s accepts publishing again (alarm cleared)", self.name, broker_of(self.url),
                 extra={"worker": self.name, "broker": broker_of(self.url)})

    def _opened(self, connection: SelectConnection) -> None:
        if self._stopping.is_set():  # stop() came while connecting, when there was no loop to tell
            connection.close()
            return
        self.on_connection_open(connection)

    def _open_failed(self, connection: SelectConnection, error: BaseException) -> None:
        self._failure = error if isinstance(error, BaseException) else pika.exceptions.AMQPConnectionError(error)
        connection.ioloop.stop()

    def _closed(self, connection: SelectConnection, reason: BaseException) -> None:
        if not self._stopping.is_set() and self._failure is None:
            self._failure = reason
        connection.ioloop.stop()

    def call_threadsafe(self, callback: Callable[[], None]) -> bool:
        """Run ``callback`` on the loop (from any thread); False when there is no loop to run it."""
        connection = self.connection
        if connection is None or self._stopping.is_set():
            return False
        try:
            connection.ioloop.add_callback_threadsafe(callback)
            return True
        except Exception:
            return False  # the loop is closing

    def _interrupt(self) -> None:
        connection = self.connection
        if connection is not None:
            try:
                connection.ioloop.add_callback_threadsafe(self.close_connection)
            except Exception:
                pass

    def close_connection(self) -> None:
        """On the loop: close (the session then ends)."""
        connection = self.connection
        if connection is not None and connection.is_open:
            connection.close()
        elif connection is not None:
            connection.ioloop.stop()

    def on_connection_open(self, connection: SelectConnection) -> None:
        raise NotImplementedError

    def on_session_end(self) -> None:
        """After the loop stopped (the connection is gone): forget what was in flight."""
