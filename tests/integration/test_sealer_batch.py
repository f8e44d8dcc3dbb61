"""The pull's batched opening of stored payloads (``Sealer.open_records``) gives what opening each row does,
for both suites' ciphers and a mix of keys, resources and clear rows, and names the row whose tag fails."""

from __future__ import annotations

import datetime as dt
from collections import namedtuple
from pathlib import Path

import pytest

from node.storage.database import make_engine, migrate, sqlite_url
from node.storage.secrecy import Sealer, open_payload
from security.keys import KeyStore
from security.secrecy import TamperedCiphertext

Row = namedtuple("Row", "provider_code resource_code record_id payload payload_key")


@pytest.mark.parametrize("algorithm", ["Ed25519", "SM2-SM3"])
def test_batched_opening_equals_opening_each_row_and_names_a_changed_one(tmp_path: Path, algorithm: str):
    sealer = Sealer(KeyStore.create(tmp_path / "keys", algorithm))
    url = sqlite_url(tmp_path / "x.db")
    migrate(url)
    engine = make_engine(url)
    sealer.attach(engine)
    now = dt.datetime.now(dt.UTC)
    rows = []
    with engine.begin() as connection:
        for resource in ("R1", "R2"):
            texts = [(f"{resource}-{n}", f'{{"公民身份号码":"36042619910101007{n}","n":{n}}}') for n in range(5)]
            key_id, sealed = sealer.seal_records(connection, "P", resource, texts, now)
            rows += [Row("P", resource, rid, s, key_id) for (rid, _), s in zip(texts, sealed, strict=True)]
    rows.insert(3, Row("P", "R1", "clear-1", '{"n":-1}', None))  # from before encryption at rest
    with engine.connect() as connection:
        opened = sealer.open_records(connection, rows)
        assert opened == [open_payload(sealer, connection, row) for row in rows]
        assert opened[3] == '{"n":-1}' and '"n":4' in opened[-1]
        changed = rows[7]._replace(record_id="R2-moved")  # a ciphertext moved to another row fails its tag
        with pytest.raises(TamperedCiphertext, match="record P/R2/R2-moved"):
            sealer.open_records(connection, [*rows[:7], changed])
        with pytest.raises(TamperedCiphertext, match="record P/R1/R1-0"):
            sealer.open_records(connection, [rows[0]._replace(payload="not base64!")])
    engine.dispose()


def test_a_rollback_of_an_invalidated_connection_raises_what_invalidated_it(tmp_path: Path):
    """A SystemExit inside a statement invalidates the connection; the rollback that follows must not replace
    it with the listener's PendingRollbackError (a worker thread would catch that and live on)."""
    sealer = Sealer(KeyStore.create(tmp_path / "keys", "Ed25519"))
    url = sqlite_url(tmp_path / "x.db")
    migrate(url)
    engine = make_engine(url)
    sealer.attach(engine)
    with pytest.raises(SystemExit), engine.connect() as connection, connection.begin():
        sealer.seal_records(connection, "P", "R1", [("R1-1", '{"n":1}')], dt.datetime.now(dt.UTC))
        connection.invalidate()
        raise SystemExit
