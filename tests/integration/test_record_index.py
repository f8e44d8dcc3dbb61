"""The current-record index of keyed resources, kept by the ingest in the records' transaction, on both
databases: an UPSERT replaces the key's record, a DELETE removes it, a refused batch changes nothing, and
the index holds keyed hashes, never the clear identifiers."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from exnode.v1 import exchange_pb2_grpc
from sqlalchemy import select

from catalog.claims import key_text
from catalog.model import Item, ItemDataType
from catalog.records import Operation, Record
from node.pipeline import provider_batch
from node.storage.tables import record_keys
from tests.fault.support import LOW_INCOME, PROVIDER, Key, as_proto, low_income_record
from tests.integration.grpc_node import RunningNode, make_config
from tests.integration.test_exchange_relay import register

ONE, TWO = "360426199101010071", "11010519491231002X"


def start(tmp_path: Path, url: str) -> RunningNode:
    from node.bootstrap import load_sample

    config = make_config(tmp_path / "node", url)
    running = RunningNode(replace(config, exchange=replace(config.exchange, dispatch=False)))
    load_sample(running.node)
    return running


def person(n: int, id_number: str, operation: Operation = Operation.UPSERT, **changes: object) -> Record:
    record = low_income_record(n)
    payload = {**record.payload, "公民身份号码": id_number, **changes}
    return Record(record.id, record.sequence, operation, payload)


def index(running: RunningNode) -> dict[str, str]:
    with running.node.uow() as uow:
        rows = uow.connection.execute(select(record_keys).where(record_keys.c.resource_code == LOW_INCOME)).all()
    return {row.key_hash: row.record_id for row in rows}


def hash_of(running: RunningNode, id_number: str) -> str:
    return running.node.ingest.key_hasher(key_text([Item("公民身份号码", ItemDataType.STRING, 18, True, key=True)],
                                                   {"公民身份号码": id_number}))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upsert_replaces_delete_removes_and_the_index_holds_only_keyed_hashes(tmp_path, backend, request):
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else ""
    running = start(tmp_path, url)
    try:
        key = Key()
        register(running, key)
        stub = exchange_pb2_grpc.ExchangeServiceStub(running.channel_as(PROVIDER, ["provider"]))
        send = lambda records: stub.Ingest(as_proto(provider_batch(PROVIDER, LOW_INCOME, records, key)))  # noqa: E731
        send([person(1, ONE), person(2, TWO.lower())])
        assert index(running) == {hash_of(running, ONE): "DB-000001", hash_of(running, TWO): "DB-000002"}
        send([person(3, ONE, 姓名="张三改")])  # a later record of the same person replaces the first
        assert index(running)[hash_of(running, ONE)] == "DB-000003"
        send([Record("DB-000004", 4, Operation.DELETE, {"公民身份号码": TWO})])  # a DELETE carrying its key
        assert set(index(running)) == {hash_of(running, ONE)}
        send([person(5, TWO), Record("DB-000006", 6, Operation.DELETE, {"公民身份号码": TWO})])
        assert set(index(running)) == {hash_of(running, ONE)}  # in sequence order within one batch
        with pytest.raises(grpc.RpcError) as refused:  # same id, other content: refused, index unchanged
            send([person(7, TWO), Record("DB-000001", 8, Operation.UPSERT, {**person(1, ONE).payload, "姓名": "x"})])
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert set(index(running)) == {hash_of(running, ONE)}
        with running.node.uow() as uow:
            dump = " ".join(str(tuple(row)) for row in uow.connection.execute(select(record_keys)))
        assert ONE not in dump and TWO not in dump and TWO.lower() not in dump
    finally:
        running.close()
