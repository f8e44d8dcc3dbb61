"""The image's HEALTHCHECK: exit 0 when the node's gRPC health service reports SERVING for ``service``
(default ``""``, the node answering its RPCs), 1 otherwise. Plaintext gRPC on the port of
EXNODE_SERVER_LISTEN; a node with server.tls_cert set needs a TLS-aware probe instead."""

from __future__ import annotations

import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main() -> int:
    port = os.environ.get("EXNODE_SERVER_LISTEN", "127.0.0.1:50051").rpartition(":")[2]
    service = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("EXNODE_HEALTH_SERVICE", "")
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                               timeout=4).status
        except grpc.RpcError as error:
            print(f"exnode health: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
    print(f"exnode health {service or '(overall)'}: {name}")
    return 0 if status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
