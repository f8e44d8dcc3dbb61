"""``exnode health``: the node's per-dependency health (gRPC health checking; no token needed)."""

from __future__ import annotations

import argparse

from grpc_health.v1 import health_pb2, health_pb2_grpc

from node.cli.common import add_client, channel, print_json
from node.ops.health import BROKER, DATABASE, LIVENESS, READINESS

CHECKED = (("overall", ""), ("liveness", LIVENESS), ("readiness", READINESS), ("database", DATABASE),
           ("broker", BROKER))


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("health", help="per-dependency health of a running node (exit 1 unless ready)")
    add_client(parser)
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the node (default 5)")
    parser.set_defaults(handler=run_health)


def run_health(args: argparse.Namespace) -> int:
    """Exit 0 when the node is ready (database and broker), 1 otherwise: usable from cron and scripts."""
    with channel(args) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        statuses = {label: health_pb2.HealthCheckResponse.ServingStatus.Name(
            stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=args.timeout).status)
            for label, service in CHECKED}
    if args.json:
        print_json(statuses)
    else:
        for label, service in CHECKED:
            print(f"{label:<10} {service or '(overall)':<17} {statuses[label]}")
    return 0 if statuses["readiness"] == "SERVING" else 1
