"""DESIGN.md §10, §13: the loss of the database machine. Two `exnode serve` replicas of one node use a
PostgreSQL primary and its streaming standby through one multi-host URL
(``host=primary&host=standby&target_session_attrs=read-write``). The primary is killed as a machine
dies (SIGKILL to every process of it) in the middle of ingest, and the standby is promoted.

With synchronous replication (``synchronous_commit = on``, the standby named in
``synchronous_standby_names``) a commit is acknowledged only once the standby has it, so every batch that
`Ingest` answered is on the new primary: the audit chain verifies, the outbox drains to the subscriber,
ingest resumes. The replication link is even partitioned (a proxy between the two stops forwarding, closing
nothing) two seconds before the kill:
the primary's commits then wait, unanswered, and nothing answered is lost.

Without it (asynchronous streaming, PostgreSQL's default), the same lag loses every batch that the
primary answered after the link was cut: the second test counts them. A deployment that
promises "acknowledged means kept" needs synchronous replication (README, Operations)."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from node.storage.tables import records
from security.keys import KeyStore
from tests.fault.servers import PostgresServer, server_root
from tests.fault.support import (
    PROVIDER,
    Ingestor,
    Key,
    Proxy,
    ServedNode,
    delete_node_topology,
    drain,
    exnode,
    outbox_states,
    platforms_toml,
    set_up_exchange,
    wait_until,
)

pytestmark = [pytest.mark.rabbitmq]
BATCH = 250


class Pair:
    """A primary and a standby on loopback ports, and the node's multi-host URL to them."""

    def __init__(self, root: Path, *, synchronous: bool) -> None:
        self.primary = PostgresServer(root, "primary")
        self.standby = PostgresServer(root, "standby")
        self.primary.init_primary(synchronous_standby="standby" if synchronous else "")
        self.primary.start()
        self.link = Proxy(("127.0.0.1", self.primary.port))
        """The replication link: the standby streams through it, and the test can cut it."""
        self.standby.init_standby_of(self.primary, via_port=self.link.port)
        self.standby.start()
        wait_until(lambda: self.primary.sql("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
                   [0][0] == 1, 60, "the standby does not stream")
        self.primary.sql("CREATE DATABASE exnode")
        self.url = (f"postgresql+psycopg://postgres@/exnode?host=127.0.0.1:{self.primary.port}"
                    f"&host=127.0.0.1:{self.standby.port}&target_session_attrs=read-write&connect_timeout=3")

    def replication(self) -> list[tuple]:
        return self.primary.sql("SELECT application_name, state, sync_state FROM pg_stat_replication")

    def close(self) -> None:
        self.link.close()
        self.primary.close()
        self.standby.close()


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    path = server_root("exnode-pg-")
    yield path
    for log in path.glob("*.log"):  # the servers' logs stay with the test's own files
        shutil.copy(log, tmp_path / f"postgres-{log.name}")
    shutil.rmtree(path, ignore_errors=True)


def serve_node(tmp_path: Path, url: str, replicas: int) -> tuple[str, list[ServedNode]]:
    node_id = f"f{uuid.uuid4().hex[:10]}"
    env = {"EXNODE_DATABASE_URL": url, "EXNODE_EXCHANGE_CLAIM_LEASE_S": "5"}
    data = tmp_path / "node"
    init = exnode("init", "--data", str(data), "--sample", "--dev", "--node-id", node_id, env=env)
    assert init.returncode == 0, init.stderr
    (data / "platforms.toml").write_text(platforms_toml(), encoding="utf-8")
    nodes = [ServedNode(data, tmp_path / f"replica-{i}.log", env) for i in range(replicas)]
    for node in nodes:
        node.start()
    return node_id, nodes


def stored_ids(url: str) -> dict[str, int]:
    """Record id → how many rows hold it, on the database the URL reaches now."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(records.c.record_id, func.count()).group_by(records.c.record_id))
            return {record_id: count for record_id, count in rows}
    finally:
        engine.dispose()


def partition_then_kill(pair: Pair, providers: list[Ingestor], *, after: int, lag_s: float) -> tuple[int, float]:
    """Once every provider has ``after`` answered batches, cut the replication link (a standby that falls
    behind: its network is down), let ingest run ``lag_s``, kill the primary (the machine is lost, with
    whatever only it had) and promote the standby. Returns the batches answered at the kill and its
    monotonic time."""
    wait_until(lambda: all(len(p.answered) >= after for p in providers) or any(p.failure for p in providers),
               240, lambda: f"{[len(p.answered) for p in providers]} batches answered before the cut")
    assert not any(p.failure for p in providers), [p.failure for p in providers]
    pair.link.stall()  # silent: the walsender and walreceiver keep their connection, nothing passes
    time.sleep(lag_s)
    answered = sum(len(p.answered) for p in providers)
    pair.primary.kill()
    killed_at = time.monotonic()
    pair.standby.promote()
    return answered, killed_at


@pytest.mark.timeout(600)
def test_primary_lost_mid_ingest_with_a_synchronous_standby_loses_no_acknowledged_batch(tmp_path: Path,
                                                                                        root: Path) -> None:
    pair = Pair(root, synchronous=True)
    node_id, nodes = "", []
    try:
        assert pair.replication()[0][2] == "sync", pair.replication()
        node_id, nodes = serve_node(tmp_path, pair.url, replicas=2)
        key = Key()
        queue = set_up_exchange(nodes[0].channel_as, key)
        # One provider (its sequence numbers only grow) whose every new stream goes to the other replica:
        # both replicas ingest, both dispatch from the shared outbox.
        provider = Ingestor(lambda: nodes[provider.streams % 2].channel_as(PROVIDER, ("provider",)), key,
                            batches=48, size=BATCH, tag=f"d{uuid.uuid4().hex[:5]}")
        providers = [provider.start()]
        answered_at_kill, killed_at = partition_then_kill(pair, providers, after=12, lag_s=2.0)
        first_after = {i: len(p.answered) for i, p in enumerate(providers)}
        wait_until(lambda: all(len(p.answered) > first_after[i] or len(p.answered) == p.batches
                               for i, p in enumerate(providers)), 240,
                   lambda: f"ingest did not resume: {[p.interruptions[-2:] for p in providers]}")
        resumed_s = time.monotonic() - killed_at
        for provider in providers:
            provider.join(300)

        acknowledged = set().union(*(p.acknowledged_ids() for p in providers))
        assert len(acknowledged) == 48 * BATCH
        stored = stored_ids(pair.url)
        lost = acknowledged - set(stored)
        twice = {record_id for record_id, count in stored.items() if count > 1}
        assert not lost, f"{len(lost)} acknowledged records are not on the promoted standby"
        assert not twice, f"{len(twice)} records stored more than once"

        officer = nodes[0].token(PROVIDER, ("security_officer",))
        verified = exnode("audit", "verify", "--data", str(nodes[0].data), "--server", nodes[0].address,
                          "--token", officer)
        assert verified.returncode == 0, verified.stdout + verified.stderr

        trusted = {node_id: KeyStore.load(nodes[0].config.keys_dir).public}
        engine = create_engine(pair.url)
        try:
            wait_until(lambda: not outbox_states(engine).get("PENDING"), 240,
                       lambda: f"the outbox does not drain: {outbox_states(engine)}")
        finally:
            engine.dispose()
        arrived = drain(queue, acknowledged, trusted=trusted, timeout=240)
        assert arrived.problems == []
        assert arrived.distinct >= acknowledged, f"{len(acknowledged - arrived.distinct)} never delivered"
        print(f"\ndatabase failover (synchronous standby, 2 replicas): acknowledged={len(acknowledged)} "
              f"records ({answered_at_kill} batches at the kill), delivered={len(arrived.distinct & acknowledged)} "
              f"lost=0 duplicated_in_effect=0 (wire duplicates {arrived.duplicates()}), "
              f"ingest_resumed_after_s={resumed_s:.1f}, interruptions={[len(p.interruptions) for p in providers]}")
    finally:
        for node in nodes:
            node.close()
        if node_id:
            delete_node_topology(node_id)
        pair.close()


@pytest.mark.timeout(400)
def test_an_asynchronous_standby_loses_acknowledged_batches_on_failover(tmp_path: Path, root: Path) -> None:
    """The demonstration of why the README asks for synchronous replication: the same failover, with
    PostgreSQL's default asynchronous streaming, loses what the primary acknowledged while the standby lagged."""
    pair = Pair(root, synchronous=False)
    node_id, nodes = "", []
    try:
        assert pair.replication()[0][2] == "async", pair.replication()
        node_id, nodes = serve_node(tmp_path, pair.url, replicas=1)
        key = Key()
        set_up_exchange(nodes[0].channel_as, key)
        provider = Ingestor(lambda: nodes[0].channel_as(PROVIDER, ("provider",)), key, batches=400, size=BATCH,
                            tag=f"a{uuid.uuid4().hex[:5]}", deadline_s=90).start()
        wait_until(lambda: len(provider.answered) >= 4 or provider.failure, 240, "no batch answered")
        before_stall = len(provider.answered)
        answered_at_kill, _ = partition_then_kill(pair, [provider], after=4, lag_s=2.0)
        nodes[0].close()  # the provider's retries are not part of this count
        acknowledged_batches = {index: {f"DB-{n:06d}" for n in provider.record_numbers(index)}
                                for index in range(answered_at_kill)}
        stored = set(stored_ids(pair.url))
        lost_batches = [index for index, ids in acknowledged_batches.items() if not ids <= stored]
        print(f"\nasynchronous standby: {answered_at_kill} batches acknowledged at the kill, "
              f"{len(lost_batches)} of them ({len(lost_batches) * BATCH} records) lost on failover "
              f"(acknowledged while the standby lagged: after batch {before_stall})")
        assert lost_batches, ("an asynchronous standby that lagged lost nothing: the demonstration did not "
                              f"demonstrate ({answered_at_kill} batches acknowledged)")
    finally:
        for node in nodes:
            node.close()
        if node_id:
            delete_node_topology(node_id)
        pair.close()
