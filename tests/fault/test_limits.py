"""The outbox's bound: a node whose broker takes nothing (the link to it is cut) keeps acknowledging
ingest into the outbox until ``exchange.max_outbox_rows`` rows wait; then Ingest answers UNAVAILABLE naming
the setting, stores nothing of the refused batch, and accepts again once rows are delivered."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest
from exnode.v1 import exchange_pb2_grpc

from node.pipeline import provider_batch
from node.storage.database import make_engine
from tests.fault.support import (
    LOW_INCOME,
    PROVIDER,
    Key,
    Proxy,
    as_proto,
    delete_node_topology,
    init_served_node,
    low_income_record,
    outbox_states,
    set_up_exchange,
)

BOUND = 4


@pytest.mark.timeout(180)
def test_ingest_is_refused_with_unavailable_once_the_outbox_is_over_its_bound(tmp_path: Path):
    link = Proxy()  # to the shared broker; closed once the subscriber's queue is declared
    env = {"EXNODE_EXCHANGE_MAX_OUTBOX_ROWS": str(BOUND), "EXNODE_RABBITMQ_URL": link.url}
    served = init_served_node(tmp_path, "o", env)
    node_id = served.node_id
    try:
        served.start()
        key = Key()
        set_up_exchange(served.channel_as, key)
        link.close()  # the broker is away from now on: nothing leaves the outbox
        stub = exchange_pb2_grpc.ExchangeServiceStub(served.channel_as(PROVIDER, ("provider",)))
        accepted, refusal = 0, None
        for index in range(40):
            numbers = range(index * 10 + 1, index * 10 + 11)
            batch = provider_batch(PROVIDER, LOW_INCOME, [low_income_record(n) for n in numbers], key,
                                   batch_id=f"o-{node_id}-{index}")
            try:
                stub.Ingest(as_proto(batch), timeout=30)
                accepted += 1
            except grpc.RpcError as error:
                refusal = error
                break
            time.sleep(0.35)  # the node looks at the outbox's size once a second
        assert refusal is not None, f"{accepted} batches accepted with a bound of {BOUND} undelivered rows"
        assert refusal.code() is grpc.StatusCode.UNAVAILABLE, (refusal.code(), refusal.details())
        assert "exchange.max_outbox_rows" in refusal.details(), refusal.details()
        engine = make_engine(served.config.database_url)
        try:
            pending = outbox_states(engine)["PENDING"]
        finally:
            engine.dispose()
        assert BOUND <= pending <= BOUND + 3, f"{pending} rows pending with a bound of {BOUND}"
        assert pending == accepted  # one platform: one row per accepted batch; the refused one stored nothing
        print(f"\noutbox bound {BOUND}: {accepted} batches accepted, then {refusal.code().name}: {refusal.details()}")
    finally:
        served.close()
        link.close()
        delete_node_topology(node_id)
