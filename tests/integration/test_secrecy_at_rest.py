"""Encryption at rest (issue 17): the ID numbers a provider sends are nowhere in clear in the SQLite file,
a PostgreSQL dump or a backup directory; a changed ciphertext is refused naming its row; rotating the
key-encryption key re-wraps data keys and leaves records as they are; a retired data key still reads and
the re-encryption job moves its records."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pika
import pytest
from exnode.v1 import exchange_pb2_grpc
from sqlalchemy import select, update

from catalog.codes import resident_id_check_character
from catalog.records import Record
from node.bootstrap import load_sample
from node.ops.backup import backup
from node.pipeline import provider_batch
from node.services.secrecy import ReencryptionJob, list_data_keys, reencrypt, retire_data_key, rotate_data
from node.storage.secrecy import Sealer
from node.storage.tables import data_keys, outbox, records
from node.storage.unit_of_work import SqlUnitOfWork, SqlUnitOfWorkFactory
from security.keys import KeyStore
from security.secrecy import TamperedCiphertext
from tests.fault.support import (
    AMQP,
    CONSUMER,
    LOW_INCOME,
    PROVIDER,
    Key,
    as_proto,
    low_income_record,
    wait_until,
)
from tests.integration.grpc_node import RunningNode, make_config
from tests.integration.test_exchange_relay import grant_and_subscribe, register


def id_number(n: int) -> str:
    body = f"150102{1960 + n % 40}{1 + n % 12:02d}{1 + n % 28:02d}{n % 1000:03d}"
    return body + resident_id_check_character(body)


def personal_record(n: int) -> Record:
    record = low_income_record(n)
    return replace(record, payload={**record.payload, "公民身份号码": id_number(n), "户主公民身份号码": id_number(n + 500),
                                    "家庭住址": f"呼和浩特市新城区秘密街道{n}号"})


@pytest.fixture
def node(tmp_path: Path, database_url: str) -> Iterator[RunningNode]:
    yield from running_node(tmp_path, database_url)


def running_node(tmp_path: Path, database_url: str) -> Iterator[RunningNode]:
    """A node relaying to one regional platform of CONSUMER, with the sample catalog and its dispatcher."""
    node_id = f"t{uuid.uuid4().hex[:10]}"
    data = tmp_path / "node"
    config = make_config(data, database_url)
    (data / "exnode.toml").write_text(f'[node]\nid = "{node_id}"\n', encoding="utf-8")  # what a backup needs
    (data / "platforms.toml").write_text(
        f'[[platform]]\nname = "hhht"\nkind = "regional"\nconsumer_code = "{CONSUMER}"\n', encoding="utf-8")
    running = RunningNode(replace(config, node=replace(config.node, id=node_id)))
    load_sample(running.node)
    running.node.start_dispatcher()
    yield running
    running.close()
    with pika.BlockingConnection(pika.URLParameters(AMQP)) as connection:
        channel = connection.channel()
        for suffix in ("out.hhht", "dlq", "in"):
            channel.queue_delete(f"exnode.{node_id}.{suffix}")
        channel.exchange_delete(f"exnode.{node_id}.dlx")


def ingest(node: RunningNode, numbers: range, key: Key | None = None) -> list[Record]:
    """Ingest personal records; with ``key`` the provider (registered, granted) sends more under it."""
    if key is None:
        key = Key()
        register(node, key)
        grant_and_subscribe(node, ("hhht",))
    provider = exchange_pb2_grpc.ExchangeServiceStub(node.channel_as(PROVIDER, ["provider"]))
    sent = [personal_record(n) for n in numbers]
    assert provider.Ingest(as_proto(provider_batch(PROVIDER, LOW_INCOME, sent, key))).accepted == len(sent)
    return sent


def secrets_of(sent: list[Record]) -> list[bytes]:
    return [value.encode() for r in sent for value in (r.payload["公民身份号码"], r.payload["家庭住址"])]


def assert_absent(blob: bytes, secrets: list[bytes], where: str) -> None:
    found = [s.decode() for s in secrets if s in blob]
    assert not found, f"{where} holds {len(found)} values in clear, e.g. {found[:2]}"


def test_ingested_id_numbers_are_nowhere_in_clear_in_the_database_or_a_backup(node: RunningNode, tmp_path: Path):
    sent = ingest(node, range(1, 41))
    secrets = secrets_of(sent)
    with node.node.uow() as uow:  # the node itself reads them back
        stored = uow.exchange.batch_records(_batch_of(uow))
    assert {r.payload["公民身份号码"] for r in stored} == {r.payload["公民身份号码"] for r in sent}
    wait_until(lambda: _pending(node) == 0, 20, "the outbox was not drained")
    config = node.config
    if config.database_url.startswith("sqlite"):
        database = Path(config.database_url.removeprefix("sqlite:///"))
        blob = b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
        assert blob and b"DB-000001" in blob  # the file is the node's (record ids are not secret)
        assert_absent(blob, secrets, f"the SQLite file {database}")
    else:
        dump = subprocess.run(["pg_dump", "--dbname", config.database_url], capture_output=True, check=True).stdout
        assert b"DB-000001" in dump
        assert_absent(dump, secrets, "pg_dump")
    target = tmp_path / "backup"
    backup(config, target)
    files = [p for p in target.rglob("*") if p.is_file()]
    assert any("database" in p.name for p in files)
    assert_absent(b"".join(p.read_bytes() for p in files), secrets, f"the backup {target}")
    assert not [p for p in files if p.name.startswith("kek-")], "the backup must not hold the key-encryption key"


def _batch_of(uow: SqlUnitOfWork) -> str:
    return uow.connection.execute(select(records.c.batch_id).limit(1)).scalar_one()


def _pending(node: RunningNode) -> int:
    with node.node.uow() as uow:
        return uow.exchange.depth()[0]


def test_a_changed_ciphertext_is_refused_naming_its_row_and_a_changed_outbox_body_is_never_published(
        node: RunningNode):
    node.node.dispatcher.stop()
    ingest(node, range(1, 4))
    with node.node.uow(write=True) as uow:
        row = uow.connection.execute(select(records.c.record_id, records.c.payload)
                                     .where(records.c.record_id == "DB-000002")).one()
        flipped = row.payload[:20] + ("A" if row.payload[20] != "A" else "B") + row.payload[21:]
        uow.connection.execute(update(records).where(records.c.record_id == "DB-000002").values(payload=flipped))
        body = uow.connection.execute(select(outbox.c.id, outbox.c.body)).one()
        uow.connection.execute(update(outbox).where(outbox.c.id == body.id)
                               .values(body=bytes(body.body[:-1]) + bytes([body.body[-1] ^ 1])))
        uow.commit()
    with node.node.uow() as uow, pytest.raises(TamperedCiphertext) as caught:
        uow.exchange.batch_records(_batch_of(uow))
    assert f"record {PROVIDER}/{LOW_INCOME}/DB-000002" in str(caught.value) and "tag does not verify" in str(caught.value)
    with node.node.uow() as uow, pytest.raises(TamperedCiphertext) as caught:  # the pull's batched opening too
        r = records.c
        rows = uow.connection.execute(select(r.provider_code, r.resource_code, r.record_id, r.payload, r.payload_key)
                                      .order_by(r.record_id)).all()
        assert node.node.uow.sealer is not None
        node.node.uow.sealer.open_records(uow.connection, rows)
    assert f"record {PROVIDER}/{LOW_INCOME}/DB-000002" in str(caught.value) and "tag does not verify" in str(caught.value)
    node.node.start_dispatcher()
    wait_until(lambda: _pending(node) == 0, 20, "the changed row was not taken out of the outbox")
    with node.node.uow() as uow:
        (platform, state, _, error, _), = uow.exchange.batch_states(_batch_of(uow))
    assert state == "DEAD" and f"outbox row {body.id}" in error and "tag does not verify" in error
    with pika.BlockingConnection(pika.URLParameters(AMQP)) as connection:
        assert connection.channel().basic_get(f"exnode.{node.config.node.id}.out.hhht")[0] is None


def test_rotating_the_key_encryption_key_rewraps_data_keys_and_leaves_records_as_they_are(
        node: RunningNode, tmp_path: Path):
    sent = ingest(node, range(1, 6))
    config = node.config
    with node.node.uow() as uow:
        before = dict(uow.connection.execute(select(records.c.record_id, records.c.payload)).all())
        wrapped_before = dict(uow.connection.execute(select(data_keys.c.key_id, data_keys.c.kek_id)).all())
    keys = KeyStore.load(config.keys_dir)
    rotation = rotate_data(keys, node.node.uow)
    assert rotation.rewrapped == len(wrapped_before) >= 1 and rotation.previous_kek_id != rotation.kek_id
    (config.keys_dir / f"kek-{rotation.previous_kek_id}.key").unlink()  # no longer needed by this database
    fresh = SqlUnitOfWorkFactory(node.node.engine, Sealer(KeyStore.load(config.keys_dir)))
    with fresh() as uow:
        after = dict(uow.connection.execute(select(records.c.record_id, records.c.payload)).all())
        assert set(uow.connection.execute(select(data_keys.c.kek_id)).scalars()) == {rotation.kek_id}
        opened = uow.exchange.batch_records(_batch_of(uow))
    assert after == before  # not one record re-encrypted
    assert [r.payload for r in opened] == [r.payload for r in sent]


def test_a_retired_data_key_still_reads_and_reencryption_moves_its_records(node: RunningNode):
    sent = ingest(node, range(1, 8))
    (key,), clear = list_data_keys(node.node.uow)
    assert (key.records, clear, key.algorithm) == (7, 0, "AES-256-GCM")
    retire_data_key(node.node.uow, key.key_id, node.node.catalog.clock())
    fresh = SqlUnitOfWorkFactory(node.node.engine, Sealer(KeyStore.load(node.config.keys_dir)))
    with fresh() as uow:
        assert [r.payload for r in uow.exchange.batch_records(_batch_of(uow))] == [r.payload for r in sent]
    assert reencrypt(fresh, node.node.catalog.clock) == 7 + 1  # the records and the outbox row
    found, clear = list_data_keys(fresh)
    by_id = {k.key_id: k for k in found}
    assert by_id[key.key_id].records == 0 and by_id[key.key_id].retired_at is not None
    live = [k for k in found if k.retired_at is None]
    assert len(live) == 1 and live[0].records == 7
    with fresh() as uow:
        assert [r.payload for r in uow.exchange.batch_records(_batch_of(uow))] == [r.payload for r in sent]


def test_a_key_retired_by_another_process_is_not_sealed_under_again_and_the_background_job_moves_its_rows(
        node: RunningNode):
    """The running node cached its live data key; `exnode keys retire-data` (another process, its own
    sealer) retires it. The node's next ingest seals under a new key at once, and the serving node's
    re-encryption job (one round of what ``exnode serve`` runs every database.reencrypt_interval_s) moves
    the old key's rows, once."""
    key = Key()
    register(node, key)
    grant_and_subscribe(node, ("hhht",))
    first = ingest(node, range(1, 5), key)
    (old,), _ = list_data_keys(node.node.uow)
    other_process = SqlUnitOfWorkFactory(node.node.engine, Sealer(KeyStore.load(node.config.keys_dir)))
    retire_data_key(other_process, old.key_id, node.node.catalog.clock())
    second = ingest(node, range(5, 9), key)
    with node.node.uow() as uow:
        keys_of = dict(uow.connection.execute(select(records.c.record_id, records.c.payload_key)).all())
    assert len(keys_of) == 8
    new_keys = {keys_of[r.id] for r in second}
    assert len(new_keys) == 1 and old.key_id not in new_keys, "the running node sealed under a retired key"
    assert {keys_of[r.id] for r in first} == {old.key_id}  # still there, still readable, until the job runs

    job = ReencryptionJob(node.node.uow, node.node.catalog.clock, step=3)  # several bounded steps
    assert job.run_once() == 4 + 1  # the four records and the first batch's outbox row
    assert job.run_once() == 0  # swept: the records table is not scanned again for the same key
    found, clear = list_data_keys(node.node.uow)
    by_id = {k.key_id: k for k in found}
    assert clear == 0 and by_id[old.key_id].records == 0 and by_id[new_keys.pop()].records == 8
    with node.node.uow() as uow:
        rows = uow.connection.execute(select(records.c.batch_id).distinct()).scalars().all()
        payloads = [r.payload for batch in rows for r in uow.exchange.batch_records(batch)]
    assert sorted(p["公民身份号码"] for p in payloads) == sorted(r.payload["公民身份号码"] for r in first + second)


def test_the_keyed_hash_of_an_identifier_is_stable_across_kek_rotation_and_reveals_nothing(node: RunningNode):
    """What an index keeps instead of a 公民身份号码: HMAC under the node's index data key."""
    number = id_number(7)
    sealer = node.node.uow.sealer
    assert sealer is not None
    with node.node.uow(write=True) as uow:
        first = sealer.identifier_hash(uow.connection, number, node.node.catalog.clock())
        uow.commit()
    assert len(first) == 64 and number not in first and first != id_number(8)
    rotate_data(KeyStore.load(node.config.keys_dir), node.node.uow)
    again = Sealer(KeyStore.load(node.config.keys_dir))
    with node.node.uow() as uow:
        assert again.identifier_hash(uow.connection, number, node.node.catalog.clock()) == first
        assert again.identifier_hash(uow.connection, id_number(8), node.node.catalog.clock()) != first


def test_reencryption_moves_household_checks_and_stored_answers_off_a_retired_key(node: RunningNode):
    """Household-check members, findings and answers, and the answers kept for other nodes' requests, are
    sealed under the ``checks`` and ``rpc`` data keys: retiring those keys moves them too, and they still
    read whole afterwards."""
    import datetime as dt

    from catalog.checks import CheckTarget, HouseholdCheck, Member, TargetState
    from node.storage.tables import check_targets, household_checks, rpc_answers

    now = node.node.catalog.clock()
    check_id = uuid.uuid4().hex
    findings = ({"id_number": id_number(3), "items": {"存款余额": 52000.5}},)
    with node.node.uow(write=True) as uow:
        uow.checks.add(HouseholdCheck(check_id, CONSUMER, (Member(id_number(3), "王芳"),), "低保", "SQ-1",
                                      now + dt.timedelta(minutes=5), now, (CheckTarget("bank", "银行"),)), "tester")
        uow.checks.put_target(check_id, CheckTarget("bank", "银行", TargetState.ANSWERED, "", findings, now, "sig", "k1"),
                              b'{"signed": "answer"}')
        uow.verifications.store_answer("req-1", "other-node", b'{"records": "given"}', now)
        uow.commit()
        before = {uow.connection.execute(select(household_checks.c.data_key)).scalar_one(),
                  uow.connection.execute(select(check_targets.c.data_key)).scalar_one(),
                  uow.connection.execute(select(rpc_answers.c.data_key)).scalar_one()}
    assert None not in before
    for key_id in before:
        retire_data_key(node.node.uow, key_id, now)
    assert reencrypt(node.node.uow, node.node.catalog.clock) >= 3
    with node.node.uow() as uow:
        after = {uow.connection.execute(select(household_checks.c.data_key)).scalar_one(),
                 uow.connection.execute(select(check_targets.c.data_key)).scalar_one(),
                 uow.connection.execute(select(rpc_answers.c.data_key)).scalar_one()}
        check = uow.checks.get(check_id)
        answer = uow.checks.answer(check_id, "bank")
        stored = uow.verifications.stored_answer("req-1")
    assert not after & before and None not in after
    assert check is not None and check.members == (Member(id_number(3), "王芳"),)
    assert check.target("bank").findings == findings
    assert (answer, stored) == (b'{"signed": "answer"}', b'{"records": "given"}')
