"""The node's data keys as an operator handles them (``exnode keys rotate-data | retire-data | reencrypt |
data``): envelope encryption at rest, DESIGN.md §13.

Rotating the key-encryption key makes a new KEK file and re-wraps every data key in one transaction; the
records are not touched. Retiring a data key stops new rows being sealed under it at once, in a running
node too (``node.storage.secrecy.Sealer`` checks each transaction); the re-encryption job then moves its rows
to a live key in bounded steps, each its own transaction, so a node can keep serving while it runs. A
serving node runs that job itself (``ReencryptionJob``, every ``database.reencrypt_interval_s``) whenever a
key it has not swept yet is retired; ``exnode keys reencrypt`` runs it by hand.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from catalog.errors import NotFound
from node.storage.secrecy import DataKey
from node.storage.unit_of_work import UnitOfWorkFactory
from security.keys import KeyStore


@dataclass(frozen=True)
class Rotation:
    kek_id: str
    previous_kek_id: str
    rewrapped: int


def rotate_data(keys: KeyStore, uow: UnitOfWorkFactory) -> Rotation:
    """A new active KEK, then every data key re-wrapped by it (one transaction). The old KEK file stays:
    a backup taken before the rotation still needs it."""
    previous = keys.kek_active
    rotated = keys.rotate_kek()
    with uow(write=True) as work:
        count = work.data_keys.rewrap(rotated)
        work.commit()
    return Rotation(rotated.kek_active, previous, count)


def list_data_keys(uow: UnitOfWorkFactory) -> tuple[list[DataKey], int]:
    """The data keys with the number of records each seals, and the records still in clear."""
    with uow() as work:
        return work.data_keys.all(), work.data_keys.clear_records()


def retire_data_key(uow: UnitOfWorkFactory, key_id: str, now: dt.datetime) -> None:
    with uow(write=True) as work:
        if not work.data_keys.retire(key_id, now):
            known = {k.key_id: k for k in work.data_keys.all()}
            if key_id not in known:
                raise NotFound("data key", key_id)
        work.commit()


def reencrypt(uow: UnitOfWorkFactory, clock: Callable[[], dt.datetime], step: int = 2000) -> int:
    """Seal again every record under a retired key (or in clear) with its resource's live key, and every
    outbox body, household check and stored answer under a retired key with the live one."""
    total = 0
    while True:
        with uow(write=True) as work:
            now = clock()
            moved = work.data_keys.reencrypt(now, step)
            retired = work.data_keys.retired()
            if retired:  # household checks and the answers kept for other nodes, under the checks/rpc keys
                moved += work.checks.reseal(retired, now, step) + work.verifications.reseal(retired, now, step)
            work.commit()
        total += moved
        if not moved:
            return total


class ReencryptionJob:
    """The serving node's background re-encryption: sweeps once for every newly retired data key (a key
    retired by ``exnode keys retire-data`` in another process is found at the next round), so the records
    table is scanned only when there is something to move, not at every round."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Callable[[], dt.datetime], step: int = 2000) -> None:
        self.uow = uow
        self.clock = clock
        self.step = step
        self.swept: set[str] = set()

    def run_once(self) -> int:
        """Records and outbox rows moved off retired keys this round (0 when no key was newly retired)."""
        with self.uow() as work:
            retired = work.data_keys.retired()
        if retired <= self.swept:
            return 0
        moved = reencrypt(self.uow, self.clock, self.step)
        self.swept |= retired
        return moved
