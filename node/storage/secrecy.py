"""Envelope encryption of what storage keeps of personal data (issue 17, DESIGN.md §13).

A data key per scope (a resource; ``index`` for keyed hashes) and month seals the record payloads and the
outbox bodies of that scope; it is kept in ``data_keys`` wrapped by the node's key-encryption key (KEK),
whose bytes live only in the node's key files (``security.keys``). Rows carry the id of the key that
sealed them, so rotating the KEK re-wraps a few data keys and touches no record, and a retired data key
still opens its rows until ``reencrypt`` has moved them.

New data keys are inserted in the caller's transaction; they are used by other transactions only once that
one commits (an engine listener confirms them), so a rolled-back ingest never leaves rows sealed under a
key that does not exist. A retirement takes effect at once in a running node, even when another process
(``exnode keys retire-data``) made it: each transaction checks, once per key, that the cached live key
is still live before it seals under it.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import secrets
import threading
from binascii import a2b_base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import event, func, insert, select, update
from sqlalchemy.engine import Connection, Engine

from node.storage.errors import MissingKeys
from node.storage.tables import batches, data_keys, outbox, records
from security.errors import SecurityError
from security.keys import KeyStore
from security.secrecy import (
    AES_256_GCM,
    NONCE_SIZE,
    Cipher,
    TamperedCiphertext,
    keyed_hash,
    new_key,
    unwrap,
    wrap,
)

INDEX_SCOPE = "index"
_PENDING = "exnode_pending_data_keys"
_LIVE = "exnode_live_data_keys"


class MissingDataKey(SecurityError):
    """A row names a data key this node cannot open (not in ``data_keys``, or wrapped by a KEK whose file
    is not in the node's keys)."""


def period_of(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y-%m")


def record_aad(provider_code: str, resource_code: str, record_id: str) -> bytes:
    return f"exnode record\x00{provider_code}\x00{resource_code}\x00{record_id}".encode()


def outbox_aad(batch_id: str, platform: str, consumer_code: str) -> bytes:
    return f"exnode outbox\x00{batch_id}\x00{platform}\x00{consumer_code}".encode()


@dataclass(frozen=True)
class Sealed:
    key_id: str
    text: str


class Sealer:
    """Seals and opens rows with the node's data keys; one per process, shared by its units of work."""

    def __init__(self, keys: KeyStore) -> None:
        self.keys = keys
        self.algorithm = keys.data_cipher
        self._ciphers: dict[str, Cipher] = {}
        self._active: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def attach(self, engine: Engine) -> None:
        """Confirm the data keys a transaction created when it commits; forget them when it rolls back."""
        event.listen(engine, "commit", self._committed)
        event.listen(engine, "rollback", self._rolled_back)

    def _committed(self, connection: Connection) -> None:
        for scope_period, key_id in connection.info.pop(_PENDING, {}).items():
            self._active.setdefault(scope_period, key_id)

    def _rolled_back(self, connection: Connection) -> None:
        if connection.invalidated:
            # The driver connection is gone (a disconnect, or a BaseException such as SystemExit inside a
            # statement): reading its info would raise and hide that error. Its keys were never committed,
            # and no committed row names them, so keeping their ciphers cached is harmless.
            return
        for key_id in connection.info.pop(_PENDING, {}).values():
            self._ciphers.pop(key_id, None)

    # -- data keys ---------------------------------------------------------------------------------------
    def _cipher(self, connection: Connection, key_id: str, what: str) -> Cipher:
        cipher = self._ciphers.get(key_id)
        if cipher is not None:
            return cipher
        row = connection.execute(select(data_keys).where(data_keys.c.key_id == key_id)).first()
        if row is None:
            raise MissingDataKey(f"{what}: data key {key_id} is not in this node's data_keys")
        kek = self.keys.keks.get(row.kek_id)
        if kek is None:  # `exnode keys rotate-data` ran beside this process: its new KEK is in the files
            self.keys = KeyStore.load(self.keys.directory)
            kek = self.keys.keks.get(row.kek_id)
        if kek is None:
            raise MissingDataKey(f"{what}: data key {key_id} is wrapped by key-encryption key {row.kek_id}, whose "
                                 f"file kek-{row.kek_id}.key is not in {self.keys.directory}")
        cipher = Cipher(row.algorithm, unwrap(kek.cipher, key_id, bytes(row.wrapped)))
        self._ciphers[key_id] = cipher
        return cipher

    def active_key(self, connection: Connection, scope: str, now: dt.datetime) -> tuple[str, Cipher]:
        """The live data key of ``scope`` this month, made (in the caller's transaction) when there is none."""
        period = period_of(now)
        pending = connection.info.get(_PENDING, {})
        key_id = pending.get((scope, period))
        if key_id is None:
            key_id = self._active.get((scope, period))
            if key_id is not None and not self._still_live(connection, key_id):
                with self._lock:
                    if self._active.get((scope, period)) == key_id:
                        del self._active[(scope, period)]
                key_id = None
        if key_id is None:
            with self._lock:
                c = data_keys.c
                key_id = connection.execute(
                    select(c.key_id).where(c.scope == scope, c.period == period, c.retired_at.is_(None),
                                           c.algorithm == self.algorithm).order_by(c.created_at, c.key_id).limit(1)
                ).scalar()
                if key_id is not None:
                    self._active[(scope, period)] = key_id
                else:
                    key_id = secrets.token_hex(8)
                    material = new_key(self.algorithm)
                    kek = self.keys.kek
                    connection.execute(insert(data_keys).values(
                        key_id=key_id, scope=scope, period=period, algorithm=self.algorithm, kek_id=kek.kid,
                        wrapped=wrap(kek.cipher, key_id, material), created_at=now, retired_at=None))
                    connection.info.setdefault(_PENDING, {})[(scope, period)] = key_id
                    self._ciphers[key_id] = Cipher(self.algorithm, material)
        return key_id, self._cipher(connection, key_id, f"data key of {scope}")

    def _still_live(self, connection: Connection, key_id: str) -> bool:
        """Whether ``key_id`` is not retired, asked once per key and transaction (a primary-key read), so a
        key retired by another process is not sealed under past the transaction that sees it retired."""
        transaction = connection.get_transaction()
        if transaction is None:
            checked: tuple = (None, set())
        elif (checked := connection.info.get(_LIVE)) is None or checked[0] is not transaction:
            checked = connection.info[_LIVE] = (transaction, set())
        if key_id in checked[1]:
            return True
        retired = connection.execute(select(data_keys.c.retired_at).where(data_keys.c.key_id == key_id)).first()
        if retired is None or retired.retired_at is not None:
            return False
        checked[1].add(key_id)
        return True

    # -- rows --------------------------------------------------------------------------------------------
    def seal_records(self, connection: Connection, provider_code: str, resource_code: str,
                     payloads: list[tuple[str, str]], now: dt.datetime) -> tuple[str, list[str]]:
        """(key id, sealed payload text per (record id, canonical JSON))."""
        key_id, cipher = self.active_key(connection, resource_code, now)
        out = [base64.b64encode(cipher.seal(text.encode("utf-8"), record_aad(provider_code, resource_code, rid))
                                ).decode("ascii") for rid, text in payloads]
        return key_id, out

    def open_record(self, connection: Connection, key_id: str | None, provider_code: str, resource_code: str,
                    record_id: str, stored: str) -> str:
        """The canonical JSON of a stored payload; TamperedCiphertext naming the row when its tag fails."""
        if key_id is None:
            return stored
        what = f"record {provider_code}/{resource_code}/{record_id}"
        cipher = self._cipher(connection, key_id, what)
        try:
            sealed = base64.b64decode(stored, validate=True)
        except ValueError:
            raise TamperedCiphertext(f"{what}: the stored payload is not base64 ciphertext") from None
        return cipher.open(sealed, record_aad(provider_code, resource_code, record_id), what).decode("utf-8")

    def open_records(self, connection: Connection, rows: list[Any]) -> list[str]:
        """The canonical JSON of many records rows (provider_code, resource_code, record_id, payload,
        payload_key), in order, in one pass: the cipher, the base64 decoder and the associated-data prefix
        are looked up once per key and resource, not per row (the nightly pull's hot path).
        TamperedCiphertext naming the first row whose tag fails."""
        out: list[str] = []
        append = out.append
        openers: dict[tuple[str, str, str], Callable[[str, str], str | None]] = {}
        for row in rows:
            key_id = row.payload_key
            if key_id is None:
                append(row.payload)
                continue
            group = (key_id, row.provider_code, row.resource_code)
            opener = openers.get(group)
            if opener is None:
                opener = openers[group] = self._opener(connection, *group, row.record_id)
            text = opener(row.payload, row.record_id)
            if text is None:
                what = f"record {row.provider_code}/{row.resource_code}/{row.record_id}"
                raise TamperedCiphertext(f"{what}: the stored payload is not base64 ciphertext, or its tag does not "
                                         "verify (the ciphertext was changed, moved from another row, or sealed "
                                         "under another key)")
            append(text)
        return out

    def _opener(self, connection: Connection, key_id: str, provider_code: str, resource_code: str,
                first_record: str) -> Callable[[str, str], str | None]:
        """Opens one stored payload of (key, provider, resource) by record id; None when it does not open."""
        cipher = self._cipher(connection, key_id, f"record {provider_code}/{resource_code}/{first_record}")
        prefix = record_aad(provider_code, resource_code, "")
        if cipher.algorithm != AES_256_GCM:
            def open_sm4(stored: str, record_id: str) -> str | None:
                try:
                    return cipher.open(a2b_base64(stored, strict_mode=True), prefix + record_id.encode(),
                                       "").decode("utf-8")
                except (binascii.Error, ValueError, TamperedCiphertext):
                    return None
            return open_sm4
        decrypt = AESGCM(cipher.key).decrypt

        def open_aes(stored: str, record_id: str) -> str | None:
            try:
                sealed = a2b_base64(stored, strict_mode=True)
                return decrypt(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], prefix + record_id.encode()).decode("utf-8")
            except (binascii.Error, ValueError, InvalidTag):
                return None
        return open_aes

    def seal_body(self, connection: Connection, resource_code: str, batch_id: str, platform: str,
                  consumer_code: str, body: bytes, now: dt.datetime) -> tuple[str, bytes]:
        key_id, cipher = self.active_key(connection, resource_code, now)
        return key_id, cipher.seal(body, outbox_aad(batch_id, platform, consumer_code))

    def open_body(self, connection: Connection, key_id: str | None, message_id: int, batch_id: str, platform: str,
                  consumer_code: str, body: bytes) -> bytes:
        if key_id is None:
            return body
        what = f"outbox row {message_id} (batch {batch_id} to {platform})"
        return self._cipher(connection, key_id, what).open(body, outbox_aad(batch_id, platform, consumer_code), what)

    def seal_blob(self, connection: Connection, scope: str, aad: bytes, data: bytes, now: dt.datetime
                  ) -> tuple[str, bytes]:
        """(key id, ciphertext) of any row's personal data under ``scope``'s data key of the month."""
        key_id, cipher = self.active_key(connection, scope, now)
        return key_id, cipher.seal(data, aad)

    def open_blob(self, connection: Connection, key_id: str | None, aad: bytes, data: bytes, what: str) -> bytes:
        """``data`` opened (as stored when ``key_id`` is None: a row from before it was sealed)."""
        if key_id is None:
            return data
        return self._cipher(connection, key_id, what).open(data, aad, what)

    def identifier_hash(self, connection: Connection, value: str, now: dt.datetime) -> str:
        """The keyed hash an index keeps of a personal identifier (HMAC-SHA-256 or HMAC-SM3 by suite), under
        the node's one index key: stable across KEK rotations (the key is re-wrapped, not replaced)."""
        c = data_keys.c
        key_id = connection.execute(select(c.key_id).where(c.scope == INDEX_SCOPE).order_by(c.created_at)
                                    .limit(1)).scalar()
        if key_id is None:
            key_id, cipher = self.active_key(connection, INDEX_SCOPE, now)
        else:
            cipher = self._cipher(connection, key_id, "the identifier index key")
        return keyed_hash(cipher.algorithm, cipher.key, value)


def open_payload(sealer: Sealer | None, connection: Connection, row: Any) -> str:
    """The canonical JSON of a records row (with provider_code, resource_code, record_id, payload and
    payload_key), opened under its data key; TamperedCiphertext naming the row when its tag fails."""
    if row.payload_key is None:
        return row.payload
    if sealer is None:
        raise MissingKeys(f"record {row.provider_code}/{row.resource_code}/{row.record_id} is encrypted and this "
                          "reader was given no keys")
    return sealer.open_record(connection, row.payload_key, row.provider_code, row.resource_code, row.record_id,
                              row.payload)


@dataclass(frozen=True)
class DataKey:
    key_id: str
    scope: str
    period: str
    algorithm: str
    kek_id: str
    created_at: dt.datetime
    retired_at: dt.datetime | None
    records: int


class DataKeysRepository:
    """The data keys of one transaction: list, re-wrap, retire, and the re-encryption job's steps."""

    def __init__(self, connection: Connection, sealer: Sealer | None) -> None:
        self.connection = connection
        self.sealer = sealer

    def all(self) -> list[DataKey]:
        k, r = data_keys.c, records.c
        counts = dict(self.connection.execute(select(r.payload_key, func.count()).group_by(r.payload_key)).all())
        return [DataKey(row.key_id, row.scope, row.period, row.algorithm, row.kek_id, row.created_at, row.retired_at,
                        int(counts.get(row.key_id, 0)))
                for row in self.connection.execute(select(data_keys).order_by(k.created_at, k.key_id))]

    def retired(self) -> set[str]:
        """The ids of the retired data keys."""
        c = data_keys.c
        return set(self.connection.execute(select(c.key_id).where(c.retired_at.is_not(None))).scalars())

    def clear_records(self) -> int:
        """Records stored before encryption at rest (no key id): what the re-encryption job has still to seal."""
        return int(self.connection.execute(select(func.count()).select_from(records)
                                           .where(records.c.payload_key.is_(None))).scalar_one())

    def rewrap(self, keys: KeyStore) -> int:
        return rewrap(self.connection, keys)

    def retire(self, key_id: str, now: dt.datetime) -> bool:
        return retire(self.connection, key_id, now)

    def reencrypt(self, now: dt.datetime, limit: int = 2000) -> int:
        if self.sealer is None:
            raise MissingDataKey("re-encryption needs the node's keys")
        return reencrypt(self.connection, self.sealer, now, limit)


def rewrap(connection: Connection, keys: KeyStore) -> int:
    """Re-wrap every data key with the active KEK (after ``exnode keys rotate-data``): the records stay as
    they are, sealed by the same data keys. Returns the number of keys re-wrapped."""
    count = 0
    for row in connection.execute(select(data_keys)).all():
        if row.kek_id == keys.kek_active:
            continue
        old = keys.keks.get(row.kek_id)
        if old is None:
            raise MissingDataKey(f"data key {row.key_id} is wrapped by key-encryption key {row.kek_id}, whose file "
                                 f"kek-{row.kek_id}.key is not in {keys.directory}")
        material = unwrap(old.cipher, row.key_id, bytes(row.wrapped))
        connection.execute(update(data_keys).where(data_keys.c.key_id == row.key_id).values(
            kek_id=keys.kek_active, wrapped=wrap(keys.kek.cipher, row.key_id, material)))
        count += 1
    return count


def retire(connection: Connection, key_id: str, now: dt.datetime) -> bool:
    """Retire a data key: no new row is sealed under it; ``reencrypt`` moves its rows to a live key."""
    return bool(connection.execute(update(data_keys).where(data_keys.c.key_id == key_id,
                                                          data_keys.c.retired_at.is_(None))
                                   .values(retired_at=now)).rowcount)


def reencrypt(connection: Connection, sealer: Sealer, now: dt.datetime, limit: int = 2000) -> int:
    """One step of the background re-encryption job: up to ``limit`` records sealed under a retired key (or
    none, from before encryption at rest) are opened and sealed again under their resource's live key; so
    are outbox bodies under a retired key (household checks and stored answers: their repositories' reseal).
    Returns how many; the caller commits and calls again until it returns 0."""
    r, k = records.c, data_keys.c
    retired = select(k.key_id).where(k.retired_at.is_not(None))
    rows = connection.execute(
        select(r.provider_code, r.resource_code, r.record_id, r.payload, r.payload_key)
        .where(r.payload_key.is_(None) | r.payload_key.in_(retired)).limit(limit)).all()
    for row in rows:
        text = sealer.open_record(connection, row.payload_key, row.provider_code, row.resource_code, row.record_id,
                                  row.payload)
        key_id, (sealed,) = sealer.seal_records(connection, row.provider_code, row.resource_code,
                                                [(row.record_id, text)], now)
        connection.execute(update(records).where(r.provider_code == row.provider_code,
                                                 r.resource_code == row.resource_code, r.record_id == row.record_id)
                           .values(payload=sealed, payload_key=key_id))
    o = outbox.c
    bodies = connection.execute(select(o.id, o.batch_id, o.platform, o.consumer_code, o.body, o.body_key)
                                .where(o.body_key.in_(retired)).limit(limit)).all()
    for row in bodies:
        body = sealer.open_body(connection, row.body_key, row.id, row.batch_id, row.platform, row.consumer_code,
                                bytes(row.body))
        resource = connection.execute(select(batches.c.resource_code).where(batches.c.batch_id == row.batch_id)
                                      ).scalar() or INDEX_SCOPE
        key_id, sealed_body = sealer.seal_body(connection, resource, row.batch_id, row.platform, row.consumer_code,
                                               body, now)
        connection.execute(update(outbox).where(o.id == row.id).values(body=sealed_body, body_key=key_id))
    return len(rows) + len(bodies)
