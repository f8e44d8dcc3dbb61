"""Callers that give up — deadlines of a few milliseconds, cancelled unary calls, cancelled server and
bidirectional streams, with and without a token, from several threads — cannot stop a node (issue 13).

Before the fix, 50 tokenless calls with a 2 ms deadline killed the audit writer (its future had been
cancelled by the waiting call) and every later call of every user waited for an entry nobody wrote,
while health still said SERVING. Afterwards every RPC answers, the audit trail verifies, and it holds one
final entry for every call the node saw (the node's own RPC counter says how many it saw)."""

from __future__ import annotations

import collections
import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from exnode.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    catalog_pb2,
    catalog_pb2_grpc,
    checks_pb2,
    checks_pb2_grpc,
    exchange_pb2_grpc,
    query_pb2,
    query_pb2_grpc,
)
from exnode.v1 import exchange_pb2 as pb

from node.pipeline import provider_batch
from tests.e2e.observed import MetricsNode
from tests.fault.support import (
    LOW_INCOME,
    PROVIDER,
    Key,
    as_proto,
    delete_node_topology,
    exnode,
    low_income_record,
    platforms_toml,
    set_up_exchange,
    wait_until,
)

pytestmark = [pytest.mark.rabbitmq]
METHODS = {
    "ListResources": "/exnode.v1.CatalogService/ListResources",
    "WatchCatalog": "/exnode.v1.CatalogService/WatchCatalog",
    "ExportAudit": "/exnode.v1.AuditService/ExportAudit",
    "Pull": "/exnode.v1.ExchangeService/Pull",
    "IngestStream": "/exnode.v1.ExchangeService/IngestStream",
    "QueryRecords": "/exnode.v1.QueryService/QueryRecords",
    "VerifyClaim": "/exnode.v1.QueryService/VerifyClaim",
    "WatchCheck": "/exnode.v1.CheckService/WatchCheck",
}
THREADS = 4
ROUNDS = 30
"""Each round of each thread makes one call of every kind in ``Storm.kinds``: 4 × 30 × 14 = 1,680 calls."""
LONG_S = 10.0
"""The deadline of calls the storm cancels itself (after their first message)."""
BUDGET_S = 120.0


@pytest.fixture
def served(tmp_path: Path) -> Iterator[MetricsNode]:
    data = tmp_path / "node"
    node_id = f"t{uuid.uuid4().hex[:10]}"
    init = exnode("init", "--data", str(data), "--sample", "--dev", "--node-id", node_id,
                  "--department-code", PROVIDER)
    assert init.returncode == 0, init.stderr
    (data / "platforms.toml").write_text(platforms_toml(), encoding="utf-8")
    node = MetricsNode(data, tmp_path / "serve.log")
    try:
        node.start()
        yield node
    finally:
        node.close()
        delete_node_topology(node_id)


class Storm:
    """Calls that give up early. Each carries its own x-request-id, so the trail can be checked per call."""

    def __init__(self, node: MetricsNode, key: Key) -> None:
        self.node = node
        self.key = key
        self.raw = grpc.insecure_channel(node.address)
        self.tokens = {
            "admin": node.token(PROVIDER, ("catalog_admin",)),
            "officer": node.token(PROVIDER, ("security_officer",)),
            "platform": node.token(PROVIDER, ("platform",)),
            "provider": node.token(PROVIDER, ("provider",)),
        }
        self.sent: list[str] = []
        self.outcomes: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self.kinds: list[Callable[[random.Random], None]] = [
            self.unary_deadline_without_token, self.unary_deadline, self.unary_cancelled,
            self.unary_cancelled_without_token, self.watch_deadline, self.watch_cancelled_after_first_event,
            self.export_cancelled, self.pull_cancelled, self.pull_without_token, self.ingest_cancelled,
            self.ingest_deadline, self.query_deadline, self.verify_deadline_without_token,
            self.watch_check_deadline,
        ]

    def metadata(self, who: str | None) -> tuple[tuple[str, str], ...]:
        request_id = f"storm-{uuid.uuid4().hex}"
        with self._lock:
            self.sent.append(request_id)
        pairs = [("x-request-id", request_id)]
        if who is not None:
            pairs.append(("authorization", f"Bearer {self.tokens[who]}"))
        return tuple(pairs)

    def outcome(self, error: grpc.RpcError | None) -> None:
        with self._lock:
            self.outcomes["OK" if error is None else error.code().name] += 1

    @staticmethod
    def deadline(rng: random.Random) -> float:
        return rng.uniform(0.001, 0.005)

    # -- unary ------------------------------------------------------------------------------------------
    def _list(self, who: str | None, rng: random.Random) -> None:
        stub = catalog_pb2_grpc.CatalogServiceStub(self.raw)
        try:
            stub.ListResources(catalog_pb2.ListResourcesRequest(), timeout=self.deadline(rng),
                               metadata=self.metadata(who))
            self.outcome(None)
        except grpc.RpcError as error:
            self.outcome(error)

    def unary_deadline_without_token(self, rng: random.Random) -> None:
        self._list(None, rng)

    def unary_deadline(self, rng: random.Random) -> None:
        self._list("admin", rng)

    def _cancel_unary(self, who: str | None, rng: random.Random) -> None:
        stub = catalog_pb2_grpc.CatalogServiceStub(self.raw)
        future = stub.ListResources.future(catalog_pb2.ListResourcesRequest(), timeout=LONG_S, metadata=self.metadata(who))
        time.sleep(rng.uniform(0, 0.004))
        future.cancel()
        try:
            future.result(timeout=30)
            self.outcome(None)
        except grpc.FutureCancelledError:
            with self._lock:
                self.outcomes["CANCELLED"] += 1
        except grpc.RpcError as error:
            self.outcome(error)

    def unary_cancelled(self, rng: random.Random) -> None:
        self._cancel_unary("admin", rng)

    def unary_cancelled_without_token(self, rng: random.Random) -> None:
        self._cancel_unary(None, rng)

    def _short(self, call: Callable[..., object], request: object, who: str | None, rng: random.Random) -> None:
        try:
            result = call(request, timeout=self.deadline(rng), metadata=self.metadata(who))
            if not hasattr(result, "ListFields"):  # a server stream: read it to its end or its deadline
                list(result)  # type: ignore[call-overload]
            self.outcome(None)
        except grpc.RpcError as error:
            self.outcome(error)

    def query_deadline(self, rng: random.Random) -> None:
        stub = query_pb2_grpc.QueryServiceStub(self.raw)
        self._short(stub.QueryRecords, query_pb2.QueryRecordsRequest(
            resource_code=LOW_INCOME, keys=[query_pb2.RecordKey(values={"公民身份号码": "360426199101010071"})]),
            "provider", rng)

    def verify_deadline_without_token(self, rng: random.Random) -> None:
        stub = query_pb2_grpc.QueryServiceStub(self.raw)
        self._short(stub.VerifyClaim, query_pb2.VerifyClaimRequest(
            resource_code=LOW_INCOME, key=query_pb2.RecordKey(values={"公民身份号码": "360426199101010071"}),
            claims=[query_pb2.AssertedItem(item="姓名", value="王芳")]), None, rng)

    def watch_check_deadline(self, rng: random.Random) -> None:
        stub = checks_pb2_grpc.CheckServiceStub(self.raw)
        self._short(stub.WatchCheck, checks_pb2.GetCheckRequest(id="HC-storm"), "provider", rng)

    # -- server streams ---------------------------------------------------------------------------------
    def watch_deadline(self, rng: random.Random) -> None:
        stub = catalog_pb2_grpc.CatalogServiceStub(self.raw)
        call = stub.WatchCatalog(catalog_pb2.WatchCatalogRequest(from_beginning=True), timeout=self.deadline(rng),
                                 metadata=self.metadata(rng.choice(["admin", None])))
        try:
            for _ in call:
                pass
        except grpc.RpcError as error:
            self.outcome(error)

    def watch_cancelled_after_first_event(self, rng: random.Random) -> None:
        stub = catalog_pb2_grpc.CatalogServiceStub(self.raw)
        call = stub.WatchCatalog(catalog_pb2.WatchCatalogRequest(from_beginning=True), timeout=LONG_S,
                                 metadata=self.metadata("admin"))
        try:
            next(call)
            call.cancel()
            for _ in call:
                pass
        except grpc.RpcError as error:
            self.outcome(error)

    def export_cancelled(self, rng: random.Random) -> None:
        stub = audit_pb2_grpc.AuditServiceStub(self.raw)
        call = stub.ExportAudit(audit_pb2.ExportAuditRequest(), timeout=rng.choice([self.deadline(rng), LONG_S]),
                                metadata=self.metadata(rng.choice(["officer", "officer", None])))
        try:
            next(call)
            call.cancel()
            for _ in call:
                pass
        except grpc.RpcError as error:
            self.outcome(error)

    # -- bidirectional streams --------------------------------------------------------------------------
    def _pull(self, who: str | None, rng: random.Random) -> None:
        stub = exchange_pb2_grpc.ExchangeServiceStub(self.raw)
        stop = threading.Event()

        def requests() -> Iterator[pb.PullRequest]:
            yield pb.PullRequest(start=pb.PullStart())
            stop.wait(5)

        call = stub.Pull(requests(), timeout=rng.choice([self.deadline(rng), LONG_S]), metadata=self.metadata(who))
        try:
            next(call)
            time.sleep(rng.uniform(0, 0.003))
            call.cancel()
            for _ in call:
                pass
        except grpc.RpcError as error:
            self.outcome(error)
        finally:
            stop.set()

    def pull_cancelled(self, rng: random.Random) -> None:
        self._pull("platform", rng)

    def pull_without_token(self, rng: random.Random) -> None:
        self._pull(None, rng)

    def _ingest(self, timeout: float, rng: random.Random) -> None:
        stub = exchange_pb2_grpc.ExchangeServiceStub(self.raw)
        stop = threading.Event()
        base = rng.randrange(1, 10**9)

        def requests() -> Iterator[pb.RecordBatch]:
            for index in range(3):
                records = [low_income_record(base + index * 5 + n) for n in range(5)]
                yield as_proto(provider_batch(PROVIDER, LOW_INCOME, records, self.key,
                                              batch_id=f"storm-{uuid.uuid4().hex}"))
                if stop.wait(0.01):
                    return

        call = stub.IngestStream(requests(), timeout=timeout, metadata=self.metadata("provider"))
        try:
            next(call)
            call.cancel()
            for _ in call:
                pass
        except grpc.RpcError as error:
            self.outcome(error)
        finally:
            stop.set()

    def ingest_cancelled(self, rng: random.Random) -> None:
        self._ingest(LONG_S, rng)

    def ingest_deadline(self, rng: random.Random) -> None:
        self._ingest(self.deadline(rng), rng)

    def run(self, seed: int) -> None:
        """Every kind once per round, in a random order; no new call after ``BUDGET_S`` (a wedged node
        makes every call wait for its deadline, and the test then fails on the count, not on a timeout)."""
        rng = random.Random(seed)
        end = time.monotonic() + BUDGET_S
        for _ in range(ROUNDS):
            for kind in rng.sample(self.kinds, len(self.kinds)):
                if time.monotonic() > end:
                    return
                kind(rng)


def rpc_counts(node: MetricsNode) -> collections.Counter[str]:
    """Calls the node finished per method (exnode_rpc_total, every status code)."""
    counts: collections.Counter[str] = collections.Counter()
    for (name, labels), value in node.samples().items():
        method = dict(labels).get("method", "")
        if name == "exnode_rpc_total" and method in METHODS.values():
            counts[method] += int(value)
    return counts


def test_a_storm_of_callers_that_give_up_leaves_a_node_that_answers_and_an_audit_entry_per_call(served):
    key = Key()
    set_up_exchange(served.channel_as, key)
    before = rpc_counts(served)
    storm = Storm(served, key)
    threads = [threading.Thread(target=storm.run, args=(seed,)) for seed in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(BUDGET_S + 60)
    assert not any(t.is_alive() for t in threads), "the storm did not end"
    assert len(storm.sent) == THREADS * ROUNDS * len(storm.kinds), \
        f"only {len(storm.sent)} calls in {BUDGET_S:.0f} s: the node stopped answering ({storm.outcomes})"
    assert storm.outcomes["DEADLINE_EXCEEDED"] > 100 and storm.outcomes["CANCELLED"] > 100, storm.outcomes

    # Every RPC still answers, for every user, and the node says it is alive.
    checks: collections.Counter[str] = collections.Counter()
    """Calls of the storm's methods this test makes itself (the node counts them too)."""
    admin = catalog_pb2_grpc.CatalogServiceStub(served.channel_as(PROVIDER, ("catalog_admin",)))
    for _ in range(20):
        assert admin.ListResources(catalog_pb2.ListResourcesRequest(), timeout=10).resources
        checks["ListResources"] += 1
    watch = admin.WatchCatalog(catalog_pb2.WatchCatalogRequest(from_beginning=True), timeout=30)
    checks["WatchCatalog"] += 1
    assert any(event.kind == catalog_pb2.CAUGHT_UP for event in watch)
    watch.cancel()
    assert served.health("exnode.liveness") == "SERVING"
    assert served.sample("exnode_worker_up", worker="audit_writer") == 1

    officer = audit_pb2_grpc.AuditServiceStub(served.channel_as(PROVIDER, ("security_officer",)))
    verified = officer.VerifyAudit(audit_pb2.VerifyAuditRequest(), timeout=60)
    assert verified.ok, verified.problem

    # One final entry per call the node saw: the node counted them as it finished them.
    sent = set(storm.sent)

    def finals() -> collections.Counter[str]:
        checks["ExportAudit"] += 1
        lines = b"".join(chunk.jsonl for chunk in officer.ExportAudit(audit_pb2.ExportAuditRequest(), timeout=60))
        entries = [json.loads(line) for line in lines.splitlines() if line.strip()]
        mine = [e for e in entries if e.get("request_id") in sent and e.get("result") != "STARTED"]
        per_request = collections.Counter(e["request_id"] for e in mine)
        assert max(per_request.values(), default=1) == 1, "a call has two final entries"
        return collections.Counter(e["action"] for e in mine)

    def seen() -> collections.Counter[str]:
        counts = rpc_counts(served)
        return collections.Counter({short: counts[full] - before[full] - checks[short]
                                    for short, full in METHODS.items()})

    def matched() -> bool:
        audited = finals()
        return all(audited[f"{full.split('/')[1].rsplit('.', 1)[-1]}/{short}"] == count
                   for short, count in seen().items() for full in [METHODS[short]])

    wait_until(matched, 60, lambda: f"audited {finals()} vs seen {seen()}")
    assert sum(seen().values()) > len(sent) / 2, f"the node saw only {seen()} of {len(sent)} calls"
    log = served.log.read_text(encoding="utf-8", errors="replace")
    assert "InvalidStateError" not in log
    assert "Traceback" not in log, served.log_tail(80)
