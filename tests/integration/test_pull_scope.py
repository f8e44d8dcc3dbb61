"""Who the ministry platform is: the caller with the `platform` role of the department that runs the node.
A node that does not know its department says so when a platform's pull finds nothing it may pull."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from exnode.v1 import exchange_pb2 as pb
from exnode.v1 import exchange_pb2_grpc

from tests.conftest import PROVIDER
from tests.integration.grpc_node import RunningNode, make_config


def pull_refusal(running: RunningNode) -> grpc.RpcError:
    stub = exchange_pb2_grpc.ExchangeServiceStub(running.channel_as(PROVIDER, ["platform"]))
    with pytest.raises(grpc.RpcError) as refused:
        list(stub.Pull(iter([pb.PullRequest(start=pb.PullStart())]), timeout=30))
    return refused.value


def test_a_platform_pull_on_a_node_without_a_department_names_the_setting(tmp_path: Path):
    running = RunningNode(make_config(tmp_path / "node"))
    try:
        refused = pull_refusal(running)
    finally:
        running.close()
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "holds no live grant" in refused.details() and "node.department_code" in refused.details()


def test_a_platform_of_another_department_is_told_whose_node_it_is(tmp_path: Path):
    config = make_config(tmp_path / "node")
    running = RunningNode(replace(config, node=replace(config.node, department_code="11150100011627354Q")))
    try:
        refused = pull_refusal(running)
    finally:
        running.close()
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "not this node's department, 11150100011627354Q" in refused.details()
