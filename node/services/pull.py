"""The nightly pull (夜间拉取) and the close of a day: what a platform is entitled to since its cursor, as
signed batches and a signed manifest, resumable from the last batch it acknowledged.

Who gets what (the same rules as the relay):

- the ministry platform: a caller with the ``platform`` role of the department that runs the node gets
  every stored record except those of 不予共享 resources (which never leave the node), as stored;
- any other department (``consumer`` or ``platform`` role) gets the records of the resources it holds a
  live grant for, masked per that grant (``adapters.codecs.envelope.masked``, the relay's masking).

Records are served in the stored-records order (``records.position``, numbered by the sequencer in
``node/storage/pull_repository.py``) up to the high-water mark read when the pull starts, so records that
commit during a pull are left for the next one and never skipped.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from sqlalchemy.exc import IntegrityError

from adapters.codecs import envelope as envelopes
from catalog.errors import InvalidField
from catalog.lists import BEIJING
from catalog.model import ShareType
from catalog.records import Operation, Record, canonical_from_parts, canonical_record
from node.services.audit import AuditWriter
from node.services.errors import NotReady
from node.storage.catalog_repository import ResourceFilter
from node.storage.pull_repository import PulledRow, StoredDayManifest
from node.storage.unit_of_work import UnitOfWorkFactory
from security import merkle
from security.audit import AuditRecord
from security.identity import Principal
from security.keys import SigningKey
from security.policy import Action, PermissionDenied, Policy, Target
from security.pull import (
    MANIFEST_VERSION,
    CursorCodec,
    CursorError,
    batch_signing_input,
    manifest_signing_input,
)
from security.sealing import ConsumerKey, pack_records, seal_to, sealing_context
from security.timestamps import signed_digest

Clock = Callable[[], dt.datetime]

DAY_SIGNATURE_CONTEXT = b"exnode day manifest v1\n"
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class PullSettings:
    batch_records: int = 8192
    """Records per streamed batch; a power of two lets the client fold batch roots into the manifest root."""
    window: int = 4
    """Batches sent ahead of the client's acknowledgements: all the state a silent client costs."""
    ack_timeout_s: float = 60.0
    stamp_days: bool = False
    """Queue closed days' manifests and each pull's manifest for a trusted timestamp (a node with tsa.url)."""
    """A TSA is configured: each day's signed manifest waits for its RFC 3161 timestamp."""


@dataclass(frozen=True)
class Scope:
    """What one platform may pull: ``only`` the granted resources (None: all but ``excluding``), and the
    grant's items and masking rules per resource (absent: records go out as stored)."""

    platform: str
    only: frozenset[str] | None
    excluding: frozenset[str] = frozenset()
    grants: Mapping[str, tuple[tuple[str, ...], Mapping[str, str]]] = field(default_factory=dict)


@dataclass(frozen=True)
class SignedPullBatch:
    index: int
    from_cursor: str
    to_cursor: str
    records: list[bytes]
    root: bytes
    kid: str
    signature: bytes
    position: int
    disputed: tuple[int, ...] = ()
    """Indexes of records under an open objection (校核纠错): status, not content, so not signed."""
    sealed: bytes = b""
    """A sealed pull: the records packed and sealed to the platform's department key (records is empty)."""
    sealing: dict[str, str] | None = None


@dataclass(frozen=True)
class PullManifest:
    from_cursor: str
    to_cursor: str
    record_count: int
    batch_count: int
    root: bytes
    until_day: str
    kid: str
    signature: bytes
    position: int
    signed_at: str = ""
    """When the node signed it (ISO 8601 UTC, milliseconds), inside the signature (version 2)."""
    version: int = MANIFEST_VERSION


_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_OPERATIONS = {op.value: op.value for op in Operation}


def leaf_for(row: PulledRow, grant: tuple[tuple[str, ...], Mapping[str, str]] | None) -> bytes:
    """The record's canonical form as the platform may see it (the Merkle leaf and the line it stores)."""
    if grant is None:
        return unmasked_leaf(row)
    record = Record(row.record_id, row.sequence, Operation(row.operation), json.loads(row.payload))
    record = envelopes.masked((record,), grant[0], grant[1])[0]
    return canonical_record(row.provider_code, row.resource_code, record)


def unmasked_leaf(row: PulledRow) -> bytes:
    """``canonical_record`` of a stored record, for speed (a million records a night). Ingest stores the
    payload's canonical text, so the leaf is spelled from it as it is, and kept when it hashes to the
    row's stored content hash (one SHA-256, a tenth of a JSON round trip); otherwise (rows written before
    payloads were stored compact carry spaces) the key-sorted JSON is re-encoded compactly. A unit test
    holds it equal to ``canonical_record``."""
    if row.content_hash:
        leaf = canonical_from_parts(row.provider_code, row.resource_code, row.record_id, row.sequence,
                                    _OPERATIONS[row.operation], row.payload)
        if hashlib.sha256(leaf).hexdigest() == row.content_hash:
            return leaf
    return canonical_from_parts(row.provider_code, row.resource_code, row.record_id, row.sequence,
                                _OPERATIONS[row.operation], _COMPACT.encode(json.loads(row.payload)))


class PullSession:
    """One pull stream: pages records after ``start`` up to ``until``, signs each batch, accumulates the
    manifest root, and tracks the (at most ``window`` + 1) batches sent but not yet acknowledged.
    ``next_batch`` runs in a worker thread; ``sent`` and ``settle`` on the event loop only."""

    def __init__(self, app: PullApplication, principal: Principal, scope: Scope, codec: CursorCodec, start: int,
                 until: int, until_day: str) -> None:
        self.app = app
        self.principal = principal
        self.scope = scope
        self.codec = codec
        self.start = start
        self.until = until
        self.until_day = until_day
        self.position = start
        self.from_cursor = codec.issue(scope.platform, start)
        self.batches = 0
        self.records = 0
        self.acknowledged = start
        self._accumulator = merkle.RootAccumulator()
        self._unacknowledged: deque[tuple[str, int]] = deque()
        self._done = start >= until
        self.resumed = False
        self.seal_key: ConsumerKey | None = None
        """Set by ``open(sealed=True)``: each batch is sealed to this key of the platform's department."""

    @property
    def unacknowledged(self) -> int:
        return len(self._unacknowledged)

    def next_batch(self) -> SignedPullBatch | None:
        """The next signed batch, or None when everything up to the high-water mark was read. Blocking
        (database, hashing, signing): the servicer runs it off the event loop."""
        if self._done:
            return None
        scope = self.scope
        with self.app.uow() as uow:
            rows = uow.pull.page(self.position, self.until, self.app.settings.batch_records, only=scope.only,
                                 excluding=scope.excluding)
            disputed = uow.objections.disputed((r.provider_code, r.resource_code, r.record_id) for r in rows)
        if not rows:
            self._done = True
            return None
        grants = scope.grants
        leaves = [leaf_for(row, grants.get(row.resource_code) if scope.only is not None else None) for row in rows]
        leaf_hashes = [merkle.leaf_hash(leaf) for leaf in leaves]
        root = merkle.root_from_leaf_hashes(leaf_hashes)
        self._accumulator.add_leaf_hashes(leaf_hashes, root)
        from_cursor = self.codec.issue(scope.platform, self.position)
        self.position = rows[-1].position
        to_cursor = self.codec.issue(scope.platform, self.position)
        if len(rows) < self.app.settings.batch_records:
            self._done = True
        signer = self.app.signer
        signature = signer.sign(batch_signing_input(
            node_id=self.app.node_id, platform=scope.platform, index=self.batches, from_cursor=from_cursor,
            to_cursor=to_cursor, record_count=len(leaves), root=root))
        flagged = tuple(i for i, r in enumerate(rows) if (r.provider_code, r.resource_code, r.record_id) in disputed)
        batch = SignedPullBatch(self.batches, from_cursor, to_cursor, leaves, root, signer.kid, signature,
                                self.position, flagged)
        if self.seal_key is not None:
            seal = seal_to(self.seal_key, sealing_context(f"pull {to_cursor}", self.seal_key.kid))
            batch = replace(batch, records=[], sealed=seal.seal(f"batch {batch.index}", pack_records(leaves)),
                            sealing=seal.headers)
        self.batches += 1
        self.records += len(leaves)
        return batch

    def manifest(self) -> PullManifest:
        """The signed manifest, after the last batch: the range, the counts, the root over all records."""
        to_cursor = self.codec.issue(self.scope.platform, self.until)
        root = self._accumulator.root
        signer = self.app.signer
        signed_at = self.app.clock().astimezone(dt.UTC).isoformat(timespec="milliseconds")
        message = manifest_signing_input(
            node_id=self.app.node_id, platform=self.scope.platform, from_cursor=self.from_cursor, to_cursor=to_cursor,
            record_count=self.records, batch_count=self.batches, root=root, until_day=self.until_day,
            signed_at=signed_at)
        signature = signer.sign(message)
        if self.app.settings.stamp_days:  # the TSA's worker stamps it; `exnode pull stamp DIR` fetches it
            digest = signed_digest(message, signature)
            with self.app.uow(write=True) as uow:
                uow.timestamps.add_pending("pull", digest.hex(), digest, self.app.clock())
                uow.commit()
        return PullManifest(self.from_cursor, to_cursor, self.records, self.batches, root, self.until_day,
                            signer.kid, signature, self.until, signed_at)

    def sent(self, to_cursor: str, position: int) -> None:
        """A batch or the manifest went out and awaits the client's acknowledgement."""
        self._unacknowledged.append((to_cursor, position))

    def settle(self, cursor: str) -> int:
        """The position an acknowledgement stands for; settles it and everything sent before it."""
        if not any(sent == cursor for sent, _ in self._unacknowledged):
            raise InvalidField.one("ack.cursor", "is not the to_cursor of a batch or manifest sent in this pull and "
                                                 "not yet acknowledged")
        while True:
            sent, position = self._unacknowledged.popleft()
            if sent == cursor:
                return position

    def persist(self, position: int) -> None:
        """Store the acknowledged position: the next pull of this platform resumes after it."""
        with self.app.uow(write=True) as uow:
            uow.pull.acknowledge(self.scope.platform, position, self.app.clock())
            uow.commit()
        self.acknowledged = position


class PullApplication:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, signer: SigningKey, node_id: str, policy: Policy,
                 audit_writer: AuditWriter, settings: PullSettings | None = None) -> None:
        self.uow = uow
        self.clock = clock
        self.signer = signer
        self.node_id = node_id
        self.policy = policy
        self.audit_writer = audit_writer
        self.settings = settings or PullSettings()
        self._codec: CursorCodec | None = None

    def codec(self) -> CursorCodec:
        if self._codec is None:
            with self.uow(write=True) as uow:
                secret = uow.pull.cursor_secret() or uow.pull.create_cursor_secret()
                uow.commit()
            self._codec = CursorCodec(secret, self.node_id)
        return self._codec

    def scope(self, principal: Principal) -> Scope:
        """What the caller is entitled to pull, decided once when the pull starts (by the policy: the
        ministry platform everything that may leave the node, anyone else what it holds live grants for)."""
        department = principal.department_code
        if self.policy.pulls_whole_node(principal):
            self.policy.require(principal, Action.EXCHANGE_PULL, Target.pull(department, frozenset()))
            with self.uow() as uow:
                kept = {r.code for kind in ShareType if not kind.leaves_the_node
                        for r in uow.catalog.all(ResourceFilter(share_type=kind))}
            return Scope(f"{department}/node", None, frozenset(kept))
        now = self.clock()
        grants: dict[str, tuple[tuple[str, ...], Mapping[str, str]]] = {}
        with self.uow() as uow:
            live = [g for g in uow.lists.grants_for_consumer(department) if g.live(now)]
        for grant in sorted(live, key=lambda g: g.expires_at):  # the latest-expiring grant wins, as in the relay
            grants[grant.resource_code] = (tuple(grant.items), dict(grant.masking))
        self.policy.require(principal, Action.EXCHANGE_PULL, Target.pull(department, frozenset(grants)))
        return Scope(f"{department}/granted", frozenset(grants), grants=grants)

    def open(self, principal: Principal, cursor: str, *, replay: bool = False, until_day: str = "",
             sealed: bool = False) -> PullSession:
        """Check the cursor and fix the pull's range: from the cursor, or from the platform's last
        acknowledgement if that is further (unless ``replay``), up to the high-water mark (or the close of
        ``until_day``)."""
        scope = self.scope(principal)
        codec = self.codec()
        requested = 0
        if cursor:
            try:
                requested = codec.read(scope.platform, cursor)
            except CursorError as error:
                if error.kind == "other_platform":
                    raise PermissionDenied(Action.EXCHANGE_PULL, Target("cursor", scope.platform),
                                           f"cursor {error}") from None
                raise InvalidField.one("cursor", str(error)) from None
        if until_day and not _DAY.fullmatch(until_day):
            raise InvalidField.one("until_day", f"{until_day!r} is not a date YYYY-MM-DD")
        with self.uow(write=True) as uow:
            uow.pull.sequence_new_records()
            uow.commit()
        with self.uow() as uow:
            high_water = uow.pull.high_water()
            acknowledged = uow.pull.acknowledged(scope.platform)
            day = uow.pull.get_day(until_day) if until_day else None
        if requested > high_water:
            raise InvalidField.one("cursor", f"points at position {requested}, past the last stored record "
                                             f"({high_water}) of node {self.node_id}: a cursor from the future "
                                             "(was the node restored from an older backup?)")
        until = high_water
        if until_day:
            if day is None:
                raise NotReady(f"until_day: {until_day} is not closed yet (exnode batch nightly --date {until_day})")
            until = min(until, int(json.loads(day.document)["high_water"]))
        start = requested if replay else max(requested, min(acknowledged, high_water))
        session = PullSession(self, principal, scope, codec, start, max(until, start), until_day)
        session.resumed = start > requested
        if sealed:
            with self.uow() as uow:
                stored = uow.exchange.consumer_key(principal.department_code)
            if stored is None:
                raise NotReady(f"sealed: department {principal.department_code} has registered no encryption key "
                               "(ExchangeService.RegisterEncryptionKey) to seal the pull to")
            session.seal_key = ConsumerKey(stored.kid, stored.algorithm, stored.public_pem)
        return session

    # -- the close of a day ----------------------------------------------------------------------------
    def close_day(self, day: dt.date) -> tuple[StoredDayManifest, bool]:
        """The day's signed manifest (Beijing time): every record received that day, in stored order, with
        its count, Merkle root (unmasked canonical forms) and the high-water mark of the day (the highest
        position received before its end: where ``until_day`` pulls stop). Idempotent:
        a closed day returns its stored manifest unchanged. Returns (manifest, created)."""
        key = day.isoformat()
        start = dt.datetime.combine(day, dt.time(), BEIJING)
        end = start + dt.timedelta(days=1)
        now = self.clock()
        with self.uow() as uow:
            existing = uow.pull.get_day(key)
        if existing is not None:
            return existing, False
        if now < end:
            raise NotReady(f"date: {key} (Beijing time) is not over until {end.isoformat()}")
        with self.uow(write=True) as uow:
            uow.pull.sequence_new_records()
            uow.commit()
        accumulator = merkle.RootAccumulator()
        counts: dict[tuple[str, str], int] = {}
        first = last = 0
        with self.uow() as uow:
            high_water = uow.pull.high_water_before(end)
            low, high = uow.pull.day_bounds(start, end)
            after = max(low - 1, 0)
            while True:
                rows = uow.pull.page(after, high, 10_000, received=(start, end))
                if not rows:
                    break
                for row in rows:
                    accumulator.add_leaf_hash(merkle.leaf_hash(leaf_for(row, None)))
                    counts[(row.provider_code, row.resource_code)] = counts.get((row.provider_code, row.resource_code),
                                                                                0) + 1
                first = first or rows[0].position
                last = after = rows[-1].position
        document = {
            "version": 1, "node": self.node_id, "day": key, "timezone": "Asia/Shanghai",
            "from": start.isoformat(), "until": end.isoformat(), "record_count": accumulator.size,
            "merkle_root": accumulator.root.hex(), "first_position": first, "last_position": last,
            "high_water": high_water, "closed_at": now.astimezone(dt.UTC).isoformat(timespec="seconds"),
            "resources": [{"provider": p, "resource": r, "records": n} for (p, r), n in sorted(counts.items())],
        }
        text = json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        signer = self.signer
        manifest = StoredDayManifest(key, text, signer.kid, signer.sign(DAY_SIGNATURE_CONTEXT + text.encode()), now)
        try:
            with self.uow(write=True) as uow:
                uow.pull.add_day(manifest)
                if self.settings.stamp_days:
                    uow.timestamps.add_pending("day", key, signed_digest(
                        DAY_SIGNATURE_CONTEXT + text.encode(), manifest.signature), now)
                self.audit_writer.append_in(uow, [AuditRecord(
                    at=now, request_id=f"close-day-{key}", subject=f"system:{self.node_id}", department_code="",
                    roles=("system",), action="pull/close-day", target=f"day:{key}", result="OK",
                    detail=f"{accumulator.size} records, root {accumulator.root.hex()}, high water {high_water}")])
                uow.commit()
        except IntegrityError:  # closed concurrently: the first close stands
            with self.uow() as uow:
                stored = uow.pull.get_day(key)
            assert stored is not None
            return stored, False
        return manifest, True

    def day(self, key: str) -> StoredDayManifest | None:
        with self.uow() as uow:
            return uow.pull.get_day(key)


