"""Per-department limits of the gRPC port (node/grpc/limits.py): concurrent streams and a request rate,
each refused with RESOURCE_EXHAUSTED, a message naming the setting and a google.rpc.RetryInfo hint, and
neither touching another department. (The maximum message size, server.max_message_bytes, is
tests/integration/test_catalog_grpc.py's.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from exnode.v1 import catalog_pb2 as pb
from exnode.v1 import catalog_pb2_grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from node.bootstrap import load_sample
from tests.conftest import PROVIDER
from tests.integration.grpc_node import RunningNode, make_config

OTHER = "11150100011627354Q"  # 呼和浩特市民政局


def retry_delay_s(error: grpc.RpcError) -> float:
    status = rpc_status.from_call(error)
    assert status is not None, "no rich status"
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info.retry_delay.ToTimedelta().total_seconds()
    raise AssertionError(f"no RetryInfo in {status}")


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[RunningNode]:
    config = make_config(tmp_path / "node", department_max_streams=2, department_requests_per_s=5.0,
                         department_burst=5)
    running = RunningNode(config)
    load_sample(running.node)
    try:
        yield running
    finally:
        running.close()


def watch(node: RunningNode, department: str) -> grpc.Future:
    stub = catalog_pb2_grpc.CatalogServiceStub(node.channel_as(department, ("consumer",)))
    stream = stub.WatchCatalog(pb.WatchCatalogRequest(from_beginning=True), timeout=30)
    next(stream)  # the stream is open once its first event arrived
    return stream


def test_a_department_gets_at_most_its_concurrent_streams_others_are_not_affected(tmp_path: Path):
    running = RunningNode(make_config(tmp_path / "node", department_max_streams=2))
    load_sample(running.node)
    try:
        first, second = watch(running, OTHER), watch(running, OTHER)
        with pytest.raises(grpc.RpcError) as refused:
            watch(running, OTHER)
        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert OTHER in refused.value.details() and "server.department_max_streams" in refused.value.details()
        assert retry_delay_s(refused.value) > 0
        third_department = watch(running, PROVIDER)  # its own count
        first.cancel()
        time.sleep(0.5)
        again = watch(running, OTHER)
        for stream in (second, third_department, again):
            stream.cancel()
    finally:
        running.close()


def test_a_department_over_its_request_rate_is_told_when_to_retry(limited: RunningNode):
    stub = catalog_pb2_grpc.CatalogServiceStub(limited.channel_as(OTHER, ("consumer",)))
    answered, refusal = 0, None
    for _ in range(20):
        try:
            stub.ListResources(pb.ListResourcesRequest(), timeout=10)
            answered += 1
        except grpc.RpcError as error:
            refusal = error
            break
    assert refusal is not None and 5 <= answered <= 6, f"{answered} answered of a burst of 5"
    assert refusal.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "server.department_requests_per_s" in refusal.details(), refusal.details()
    delay = retry_delay_s(refusal)
    assert 0 < delay <= 0.25
    other = catalog_pb2_grpc.CatalogServiceStub(limited.channel_as(PROVIDER, ("catalog_admin",)))
    other.ListResources(pb.ListResourcesRequest(), timeout=10)  # another department's bucket is full
    time.sleep(delay + 0.05)
    stub.ListResources(pb.ListResourcesRequest(), timeout=10)  # the hint was right
