"""What the operations tests share: `exnode serve` with a known metrics port, and a TCP gate to the
broker that can be shut (connections dropped, new ones refused) and opened again on the same port."""

from __future__ import annotations

import contextlib
import socket
import threading
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from tests.fault.support import ServedNode, free_port


class MetricsNode(ServedNode):
    """`exnode serve` whose metrics port the test knows (ServedNode picks one it does not keep)."""

    def start(self, timeout: float = 90.0) -> None:
        super().start(timeout)
        assert self.process is not None
        self.metrics_address = self.process.args[self.process.args.index("--metrics-listen") + 1]

    def scrape(self) -> str:
        with urllib.request.urlopen(f"http://{self.metrics_address}/metrics", timeout=10) as response:
            return response.read().decode()

    def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """(name, sorted labels) → value of every sample of one scrape."""
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(self.scrape()) for s in family.samples}

    def sample(self, name: str, **labels: str) -> float:
        return self.samples()[(name, tuple(sorted(labels.items())))]

    def health(self, service: str) -> str:
        with grpc.insecure_channel(self.address) as channel:
            status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                               timeout=10).status
        return health_pb2.HealthCheckResponse.ServingStatus.Name(status)


class BrokerGate:
    """Forwards 127.0.0.1:<port> to RabbitMQ while open. ``shut`` drops every connection both ways and
    refuses new ones, as a broker host that went away; ``open`` listens on the same port again."""

    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 5672)) -> None:
        self.target = target
        self.port = free_port()
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()

    def open(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self._listener,), name="gate-accept", daemon=True).start()

    def shut(self) -> None:
        if self._listener is not None:
            # close() alone leaves an accept() blocked in another thread listening (Linux); shutdown wakes it
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets, self._open = self._open, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), name="gate-pump", daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    for sock in (source, sink):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
