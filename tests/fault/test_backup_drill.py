"""The disaster drill (容灾演练, issue 7): a serving node under load is backed up, killed, its data directory
(and its PostgreSQL database) destroyed, restored from the backup and started again. Then:

- the restored audit chain verifies (through the node, and directly in its database after a clean stop);
- the outbox resumes: rows that were pending at backup time are delivered by the restored node;
- every record the node acknowledged before the backup started reaches the subscriber's queue.

To make "pending at backup time" certain rather than lucky, the node reaches the broker through a TCP
forwarder that the drill takes down before the backup: the broker link is out when disaster strikes, so
the records acknowledged in the meantime exist only in the node's outbox and only the restored node can
deliver them. Records acknowledged after the backup started are what a restore loses (its recovery point);
the drill reports how many. It prints recovery_s= (restore + start until the node is ready)."""

from __future__ import annotations

import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pika
import psycopg
import pytest

from node.storage.database import make_engine
from security.keys import KeyStore
from tests.conftest import POSTGRES_ADMIN
from tests.fault.support import (
    AMQP,
    PROVIDER,
    Ingestor,
    Key,
    Proxy,
    ServedNode,
    delete_node_topology,
    drain,
    exnode,
    out_queue,
    outbox_states,
    platforms_toml,
    set_up_exchange,
    wait_until,
)

pytestmark = [pytest.mark.rabbitmq]


class Disaster(Exception):
    """Raised into the provider once the node is gone: it stops sending instead of waiting for it."""


def queue_depth(queue: str) -> int:
    with pika.BlockingConnection(pika.URLParameters(AMQP)) as connection:
        return connection.channel().queue_declare(queue, passive=True).method.message_count


def pending_in_backup_sqlite(backup: Path) -> int:
    connection = sqlite3.connect(f"file:{backup / 'database.sqlite3'}?mode=ro", uri=True)
    try:
        return connection.execute("SELECT count(*) FROM outbox WHERE state = 'PENDING'").fetchone()[0]
    finally:
        connection.close()


class Database:
    """Where the drilled node keeps its database: SQLite in its data directory, or a PostgreSQL database
    of its own that the disaster drops and the new server gives back empty."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.name = f"exnode_test_{uuid.uuid4().hex[:12]}"
        self.url = f"{POSTGRES_ADMIN.rsplit('/', 1)[0]}/{self.name}" if kind == "postgresql" else ""

    def create(self) -> None:
        if self.kind == "postgresql":
            with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{self.name}"')

    def destroy(self) -> None:
        if self.kind == "postgresql":
            with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> Iterator[Database]:
    database = Database(request.param)
    database.create()
    try:
        yield database
    finally:
        database.destroy()


@pytest.mark.timeout(240)
def test_drill_a_node_restored_from_a_backup_taken_under_load_verifies_and_delivers_what_it_acknowledged(
        tmp_path: Path, database: Database, monkeypatch: pytest.MonkeyPatch):
    data, backup = tmp_path / "node", tmp_path / "backup"
    node_id = f"t{uuid.uuid4().hex[:10]}"
    link = Proxy()  # the node's way to the broker, taken down before the backup
    if database.url:
        monkeypatch.setenv("EXNODE_DATABASE_URL", database.url)  # for init; then written into the config
    init = exnode("init", "--data", str(data), "--sample", "--dev", "--node-id", node_id)
    assert init.returncode == 0, init.stderr
    monkeypatch.delenv("EXNODE_DATABASE_URL", raising=False)
    config = (data / "exnode.toml").read_text(encoding="utf-8")
    config = config.replace(f'url = "{AMQP}"', f'url = "{link.url}"').replace('url = ""', f'url = "{database.url}"')
    (data / "exnode.toml").write_text(config, encoding="utf-8")
    (data / "platforms.toml").write_text(platforms_toml(), encoding="utf-8")
    served = ServedNode(data, tmp_path / "serve.log")
    assert served.config.rabbitmq.url == link.url and served.config.database.url == database.url
    disaster = False

    def connect():
        if disaster:
            raise Disaster
        return served.channel_as(PROVIDER, ("provider",))

    try:
        served.start()
        key = Key()
        queue = set_up_exchange(served.channel_as, key)
        assert queue == out_queue(node_id)
        provider = Ingestor(connect, key, batches=100_000, size=100, tag=f"d{uuid.uuid4().hex[:6]}").start()

        def answered_at_least(count: int) -> None:
            wait_until(lambda: len(provider.answered) >= count or provider.failure, 120,
                       lambda: f"{len(provider.answered)} batches answered, waiting for {count}")
            assert provider.failure is None, provider.failure

        answered_at_least(10)
        wait_until(lambda: queue_depth(queue) >= 5, 60, "the dispatcher delivering through the link")
        link.close()  # the broker link goes down; the outbox holds what is acknowledged from now on
        delivered_before_the_outage = provider.acknowledged_ids()
        answered_at_least(len(provider.answered) + 10)

        acknowledged_before_backup = provider.acknowledged_ids()
        answered_at_backup = len(provider.answered)
        started = time.monotonic()
        made = exnode("backup", str(backup), "--data", str(data))
        backup_s = time.monotonic() - started
        assert made.returncode == 0, made.stderr
        answered_during_backup = len(provider.answered) - answered_at_backup
        answered_at_least(len(provider.answered) + 3)  # acknowledged after the backup: the restore loses them

        served.kill()
        disaster = True
        acknowledged_at_kill = provider.acknowledged_ids()
        escrow = tmp_path / "kek-escrow"  # the key-encryption keys are kept apart from the backups
        escrow.mkdir()
        for kek in (data / "keys").glob("kek-*.key"):
            shutil.copy2(kek, escrow / kek.name)
        shutil.rmtree(data)
        database.destroy()
        database.create()  # the replacement server's empty database
        if database.kind == "sqlite":
            pending_at_backup = pending_in_backup_sqlite(backup)
            assert pending_at_backup >= 10, f"{pending_at_backup} outbox rows pending in the backup"
        only_in_the_outbox = acknowledged_before_backup - delivered_before_the_outage
        assert len(only_in_the_outbox) >= 10 * 100

        monkeypatch.setenv("EXNODE_RABBITMQ_URL", AMQP)  # the broker is reachable again
        started = time.monotonic()
        restored = exnode("restore", str(backup), "--data", str(data), "--keys", str(escrow))
        restore_s = time.monotonic() - started
        assert restored.returncode == 0, restored.stderr
        served.start()
        recovery_s = time.monotonic() - started
        lost_by_the_restore = len(acknowledged_at_kill - acknowledged_before_backup)
        print(f"\ndrill[{database.kind}]: backup_s={backup_s:.2f} batches_answered_during_backup="
              f"{answered_during_backup} restore_s={restore_s:.2f} recovery_s={recovery_s:.2f} "
              f"records_acknowledged_before_backup={len(acknowledged_before_backup)} "
              f"records_only_in_the_outbox={len(only_in_the_outbox)} "
              f"records_acknowledged_after_backup_lost_by_restore={lost_by_the_restore}")

        trusted = {node_id: KeyStore.load(data / "keys").public}
        arrived = drain(queue, acknowledged_before_backup, trusted=trusted, timeout=120)
        assert arrived.problems == [], arrived.problems[:5]
        missing = acknowledged_before_backup - arrived.distinct
        assert not missing, (f"{len(missing)} records acknowledged before the backup never arrived, e.g. "
                             f"{sorted(missing)[:5]}; {arrived.messages} messages")
        assert only_in_the_outbox <= arrived.distinct, "the restored outbox did not resume"
        engine = make_engine(served.config.database_url)
        try:
            wait_until(lambda: outbox_states(engine)["PENDING"] == 0, 60,
                       lambda: f"the restored outbox drained: {dict(outbox_states(engine))}")
            assert outbox_states(engine)["DEAD"] == 0
        finally:
            engine.dispose()

        officer = served.token(PROVIDER, ("security_officer",))
        online = exnode("audit", "verify", "--data", str(data), "--server", served.address, "--token", officer)
        assert online.returncode == 0 and "audit verify: OK" in online.stdout, online.stdout + online.stderr
        assert served.stop() == 0, served.log_tail()
        local = exnode("audit", "verify", "--local", "--data", str(data))
        assert local.returncode == 0, local.stdout + local.stderr
    finally:
        disaster = True
        served.close()
        link.close()
        delete_node_topology(node_id)
