"""What the operations tests share: `exnode serve` with a known metrics port (the TCP gate to the broker
is tests/fault/support.py's Proxy: close() shuts it, open() opens it again on the same port)."""

from __future__ import annotations

import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from tests.fault.support import ServedNode


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
