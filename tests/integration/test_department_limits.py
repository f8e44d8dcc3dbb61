"""Per-department limits of the gRPC port (node/grpc/limits.py): concurrent streams and a request rate,
each refused with RESOURCE_EXHAUSTED, a message naming the setting and a google.rpc.RetryInfo hint, and
neither touching another department; the console's pages are held to the same request rate (HTTP 429 with
Retry-After). (The maximum message size, server.max_message_bytes, is tests/integration/test_catalog_grpc.py's.)"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import grpc
import pytest
from exnode.v1 import catalog_pb2 as pb
from exnode.v1 import catalog_pb2_grpc, exchange_pb2_grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from node.bootstrap import load_sample
from tests.conftest import PROVIDER
from tests.e2e.test_cli import EXNODE, exnode, free_port
from tests.fault.support import wait_until
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
    started = time.monotonic()
    for _ in range(200):
        try:
            stub.ListResources(pb.ListResourcesRequest(), timeout=10)
            answered += 1
        except grpc.RpcError as error:
            refusal = error
            break
    refilled = int((time.monotonic() - started) * 5.0) + 1  # what the bucket gained meanwhile (a loaded machine)
    assert refusal is not None and 5 <= answered <= 5 + refilled, f"{answered} answered of a burst of 5"
    assert refusal.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "server.department_requests_per_s" in refusal.details(), refusal.details()
    delay = retry_delay_s(refusal)
    assert 0 < delay <= 0.25
    other = catalog_pb2_grpc.CatalogServiceStub(limited.channel_as(PROVIDER, ("catalog_admin",)))
    other.ListResources(pb.ListResourcesRequest(), timeout=10)  # another department's bucket is full
    time.sleep(delay + 0.05)
    stub.ListResources(pb.ListResourcesRequest(), timeout=10)  # the hint was right


class Browser:
    """One signed-in console session over plain HTTP (dev sign-in as ``department``)."""

    def __init__(self, address: str, department: str) -> None:
        host, port = address.rsplit(":", 1)
        self.connection = http.client.HTTPConnection(host, int(port), timeout=60)
        self.cookies: dict[str, str] = {}
        status, page, _ = self.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert status == 200 and token, f"no sign-in page: {status}"
        body = urlencode({"csrf_token": token[1], "next": "/", "department": department, "subject": "scraper",
                          "roles": "consumer"})
        status, _, _ = self.send("POST", "/login/dev", body)
        assert status == 303 and "exnode_console" in self.cookies, f"dev sign-in answered {status}"

    def send(self, method: str, path: str, body: str | None = None) -> tuple[int, str, dict[str, str]]:
        headers = {"cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if body is not None:
            headers["content-type"] = "application/x-www-form-urlencoded"
        self.connection.request(method, path, body=body.encode() if body else None, headers=headers)
        response = self.connection.getresponse()
        text = response.read().decode("utf-8", errors="replace")
        for header in response.headers.get_all("set-cookie") or ():
            name, _, rest = header.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]
        return response.status, text, {key.lower(): value for key, value in response.headers.items()}

    def get(self, path: str) -> tuple[int, str, dict[str, str]]:
        return self.send("GET", path)


def test_the_console_holds_a_department_to_the_same_request_rate_with_429_and_retry_after(tmp_path: Path):
    data = tmp_path / "node"
    assert exnode("init", "--data", str(data), "--dev", "--sample").returncode == 0
    console = f"127.0.0.1:{free_port()}"
    log = (tmp_path / "serve.log").open("wb")
    serving = subprocess.Popen(
        [*EXNODE, "serve", "--data", str(data), "--listen", f"127.0.0.1:{free_port()}", "--metrics-listen",
         f"127.0.0.1:{free_port()}", "--console-listen", console], stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "EXNODE_SERVER_DEPARTMENT_REQUESTS_PER_S": "1", "EXNODE_SERVER_DEPARTMENT_BURST": "3"})
    try:
        deadline = time.monotonic() + 120
        while True:
            assert serving.poll() is None, (tmp_path / "serve.log").read_text(errors="replace")[-3000:]
            with contextlib.suppress(OSError):
                socket.create_connection(tuple(console.rsplit(":", 1)), timeout=1).close()
                break
            assert time.monotonic() < deadline, "the console did not listen"
            time.sleep(0.2)
        scraper, other = Browser(console, OTHER), Browser(console, PROVIDER)
        started, answers = time.monotonic(), []
        while not answers or answers[-1][0] == 200:
            answers.append(scraper.get("/catalog"))
            assert len(answers) < 200, "the console never refused the department"
        refilled = int(time.monotonic() - started) + 1  # at 1/s: what the bucket gained meanwhile
        statuses = [status for status, _, _ in answers]
        assert 3 <= statuses.count(200) <= 3 + refilled and statuses[-1] == 429, statuses
        _, page, headers = answers[-1]
        assert "server.department_requests_per_s" in page and OTHER in page, page[-2000:]
        assert 1 <= int(headers["retry-after"]) <= 2, headers
        assert other.get("/catalog")[0] == 200  # another department's bucket is its own
        wait_until(lambda: scraper.get("/catalog")[0] == 200, 30, "the console refuses the department for good")
    finally:
        serving.terminate()
        serving.wait(30)
        log.close()


def test_ingest_and_pull_streams_count_against_the_same_department_bound(tmp_path: Path):
    """IngestStream and Pull (both bidirectional) are streams like WatchCatalog: a department holding its
    bound of watches gets neither, with the same refusal."""
    running = RunningNode(make_config(tmp_path / "node", department_max_streams=2))
    load_sample(running.node)
    try:
        watches = [watch(running, OTHER), watch(running, OTHER)]
        exchange = exchange_pb2_grpc.ExchangeServiceStub(running.channel_as(OTHER, ("provider", "consumer")))
        for name, call in (("IngestStream", exchange.IngestStream), ("Pull", exchange.Pull)):
            with pytest.raises(grpc.RpcError) as refused:
                next(iter(call(iter(()), timeout=30)))
            assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, (name, refused.value)
            assert "server.department_max_streams" in refused.value.details(), (name, refused.value.details())
            assert retry_delay_s(refused.value) > 0
        for stream in watches:
            stream.cancel()
    finally:
        running.close()
