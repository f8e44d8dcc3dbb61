"""Two `exnode serve` replicas of one node on one PostgreSQL: both dispatch from the shared outbox
(rows claimed with FOR UPDATE SKIP LOCKED and a lease), and when one is killed with -9 mid-stream the
other finishes its claimed rows once their lease runs out: nothing acknowledged is lost, nothing is
delivered twice in effect (by record id)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from node.storage.tables import outbox
from security.keys import KeyStore
from tests.fault.support import (
    PROVIDER,
    Ingestor,
    Key,
    ServedNode,
    delete_node_topology,
    drain,
    exnode,
    platforms_toml,
    set_up_exchange,
    wait_until,
)

LEASE_S = 5


@pytest.fixture
def replicas(tmp_path: Path, postgres_url: str) -> Iterator[tuple[ServedNode, ServedNode, str]]:
    node_id = f"r{uuid.uuid4().hex[:10]}"
    url = postgres_url.replace("postgresql://", "postgresql+psycopg://", 1)
    env = {"EXNODE_DATABASE_URL": url, "EXNODE_EXCHANGE_CLAIM_LEASE_S": str(LEASE_S)}
    data = tmp_path / "node"
    init = exnode("init", "--data", str(data), "--sample", "--dev", "--node-id", node_id, env=env)
    assert init.returncode == 0, init.stderr
    (data / "platforms.toml").write_text(platforms_toml(), encoding="utf-8")
    a, b = ServedNode(data, tmp_path / "a.log", env), ServedNode(data, tmp_path / "b.log", env)
    try:
        a.start()
        b.start()
        yield a, b, url
    finally:
        a.close()
        b.close()
        delete_node_topology(node_id)


def claimants(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(outbox.c.claimed_by, outbox.c.state)).all()
    finally:
        engine.dispose()
    out: dict[str, int] = {}
    for claimant, state in rows:
        out[f"{claimant}:{state}"] = out.get(f"{claimant}:{state}", 0) + 1
    return out


@pytest.mark.timeout(400)
def test_two_replicas_share_the_outbox_and_one_killed_mid_stream_loses_nothing(replicas):
    a, b, url = replicas
    key = Key()
    queue = set_up_exchange(a.channel_as, key)
    serving = {"replica": a}
    provider = Ingestor(lambda: serving["replica"].channel_as(PROVIDER, ("provider",)), key, batches=60, size=250,
                        tag=f"r{uuid.uuid4().hex[:6]}").start()
    wait_until(lambda: len(provider.answered) >= 20 or provider.failure, 240,
               lambda: f"{len(provider.answered)} batches answered before the kill")
    serving["replica"] = b
    a.kill()
    assert len(provider.answered) < 60, "the provider finished before the kill"
    provider.join(300)

    acknowledged = provider.acknowledged_ids()
    assert len(acknowledged) == 60 * 250
    trusted = {a.node_id: KeyStore.load(a.config.keys_dir).public}
    arrived = drain(queue, acknowledged, trusted=trusted, timeout=240)
    context = f"{arrived.messages} messages, {arrived.duplicates()} duplicate ids on the wire; claims {claimants(url)}"
    assert arrived.problems == [], context
    assert arrived.distinct == acknowledged, f"{len(acknowledged - arrived.distinct)} lost; {context}"
    wait_until(lambda: not any(k.endswith(":PENDING") for k in claimants(url)), 60,
               lambda: f"rows still pending: {claimants(url)}")
    replicas_that_confirmed = {k.rsplit(":", 1)[0] for k in claimants(url) if k.endswith(":CONFIRMED")}
    assert len(replicas_that_confirmed) >= 2, f"only one replica dispatched: {claimants(url)}"
