"""In-memory fakes of the node's own ports (STYLE.md §7): a unit of work whose repositories keep what the
ingest rules read and write in dicts, so those rules are tested in milliseconds. Never a fake of the
database or the broker in integration tests."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType

from catalog.lists import Grant
from catalog.model import Resource
from catalog.records import Record
from node.storage.audit_repository import Head
from node.storage.exchange_repository import ProviderKey, StoredBatch, Subscription
from node.storage.unit_of_work import UnitOfWork
from security.audit import AuditEntry, Checkpoint


@dataclass
class State:
    """Everything committed so far."""

    resources: dict[str, Resource] = field(default_factory=dict)
    keys: dict[str, ProviderKey] = field(default_factory=dict)
    batches: dict[str, StoredBatch] = field(default_factory=dict)
    records: dict[tuple[str, str, str], tuple[Record, str, str]] = field(default_factory=dict)
    """(provider, resource, record id) → (record, content hash hex, batch id)."""
    subscriptions: list[Subscription] = field(default_factory=list)
    grants: list[Grant] = field(default_factory=list)
    outbox: list[dict] = field(default_factory=list)
    deliveries: list[tuple[str, str, str, str, int]] = field(default_factory=list)
    audit: list[AuditEntry] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    head: Head = field(default_factory=lambda: Head(0, b"\0" * 32, 0, None))
    commits: int = 0


class FakeCatalog:
    def __init__(self, state: State) -> None:
        self.state = state

    def get(self, code: str, *, for_update: bool = False) -> Resource | None:
        return self.state.resources.get(code)


class FakeExchange:
    def __init__(self, state: State) -> None:
        self.state = state

    def get_key(self, kid: str) -> ProviderKey | None:
        return self.state.keys.get(kid)

    def consumer_key(self, department_code: str) -> ProviderKey | None:
        """Consumers of the unit tests register no encryption key: their rows go in clear."""
        return None

    def get_batch(self, batch_id: str) -> StoredBatch | None:
        return self.state.batches.get(batch_id)

    def add_batch(self, batch: StoredBatch, signature: bytes) -> None:
        assert batch.batch_id not in self.state.batches, "a batch id is stored once (primary key)"
        self.state.batches[batch.batch_id] = batch

    def content_hashes(self, provider_code: str, resource_code: str, ids: Sequence[str]) -> dict[str, str]:
        found = (self.state.records.get((provider_code, resource_code, i)) for i in ids)
        return {entry[0].id: entry[1] for entry in found if entry is not None}

    def last_sequence(self, provider_code: str, resource_code: str) -> int:
        return max((r.sequence for (p, c, _), (r, _, _) in self.state.records.items()
                    if (p, c) == (provider_code, resource_code)), default=0)

    def add_records(self, provider_code: str, resource_code: str, batch_id: str,
                    rows: Iterable[tuple[Record, bytes]], now: dt.datetime, *, first_position: int | None = None
                    ) -> int:
        count = 0
        for record, digest in rows:
            key = (provider_code, resource_code, record.id)
            assert key not in self.state.records, "a record id is stored once (primary key)"
            self.state.records[key] = (record, digest.hex(), batch_id)
            count += 1
        return count

    def subscriptions_for(self, resource_code: str) -> list[Subscription]:
        return [s for s in self.state.subscriptions if s.resource_code == resource_code]

    def add_outbox(self, rows: Sequence[dict], now: dt.datetime) -> None:
        self.state.outbox.extend(rows)


class FakePull:
    def __init__(self, state: State) -> None:
        self.state = state

    def claim_positions(self) -> int:
        """The first free pull position (the fake keeps no positions: ordering is the SQL sequencer's)."""
        return len(self.state.records) + 1


class FakeLists:
    def __init__(self, state: State) -> None:
        self.state = state

    def grants_for(self, consumer_code: str, resource_code: str) -> list[Grant]:
        return [g for g in self.state.grants if (g.consumer_code, g.resource_code) == (consumer_code, resource_code)]

    def add_delivery(self, provider: str, resource: str, consumer: str, now: dt.datetime, batch_id: str,
                     records: int) -> None:
        self.state.deliveries.append((provider, resource, consumer, batch_id, records))


class FakeAudit:
    def __init__(self, state: State) -> None:
        self.state = state

    def lock_head(self) -> Head:
        return self.state.head

    def head(self) -> Head:
        return self.state.head

    def append(self, entries: Sequence[AuditEntry]) -> None:
        self.state.audit.extend(entries)

    def set_head(self, head: Head) -> None:
        self.state.head = head

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        self.state.checkpoints.append(checkpoint)


class FakeUnitOfWork(UnitOfWork):
    """Works on a copy of the state; ``commit`` makes the copy the state, leaving without it discards it,
    as a transaction would."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self.working: State | None = None

    def __enter__(self) -> FakeUnitOfWork:
        self.working = copy.deepcopy(self.store.state)
        self.catalog = FakeCatalog(self.working)  # type: ignore[assignment]
        self.exchange = FakeExchange(self.working)  # type: ignore[assignment]
        self.lists = FakeLists(self.working)  # type: ignore[assignment]
        self.pull = FakePull(self.working)  # type: ignore[assignment]
        self.audit = FakeAudit(self.working)  # type: ignore[assignment]
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.working = None

    def commit(self) -> None:
        assert self.working is not None
        self.working.commits += 1
        self.store.state = copy.deepcopy(self.working)

    def restart(self) -> None:
        self.__enter__()


class FakeStore:
    """The unit-of-work factory over one in-memory state."""

    def __init__(self) -> None:
        self.state = State()

    def __call__(self, *, write: bool = False) -> FakeUnitOfWork:
        return FakeUnitOfWork(self)
