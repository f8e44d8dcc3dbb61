"""Persistence of the tier link: the provenance of records relayed by lower nodes (every hop's signature)
and the uplink's cursors (how far each upper-node platform has been sent the catalog)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from catalog.records import Operation, Record
from node.storage.secrecy import Sealer, open_payload
from node.storage.tables import (
    forwarded_demands,
    forwarded_objections,
    records,
    relayed_records,
    tier_cursors,
    tier_disputes,
)


@dataclass(frozen=True)
class RelayedRecord:
    provider_code: str
    resource_code: str
    record: Record
    hops: list[dict[str, Any]]


class TierRepository:
    def __init__(self, connection: Connection, sealer: Sealer | None = None) -> None:
        self.sealer = sealer
        self.connection = connection
        self.demands = ForwardedDemands(connection)
        """回流: demands that crossed a tier link."""
        self.disputes = TierDisputes(connection)
        """校核纠错 across tiers: the marks lower nodes set on records they relayed here."""
        self.objections = ForwardedObjections(connection)
        """校核纠错 across tiers: objections raised above to records whose provider is below."""

    def add_relayed(self, provider_code: str, resource_code: str, sender_node: str, sender_batch_id: str,
                    hops: Sequence[tuple[str, list[dict[str, Any]]]], now: dt.datetime) -> None:
        """(record id, its hops as dicts) of records just stored from a lower node's batch."""
        if hops:
            self.connection.execute(insert(relayed_records), [
                {"provider_code": provider_code, "resource_code": resource_code, "record_id": record_id,
                 "sender_node": sender_node, "sender_batch_id": sender_batch_id, "hops": json.dumps(chain),
                 "received_at": now} for record_id, chain in hops])

    def sender_of(self, provider_code: str, resource_code: str, record_id: str) -> str | None:
        """The lower node that relayed the record here (None: it was not relayed by a lower node)."""
        p = relayed_records.c
        return self.connection.execute(select(p.sender_node).where(
            p.provider_code == provider_code, p.resource_code == resource_code, p.record_id == record_id)).scalar()

    def relayed(self) -> Iterator[RelayedRecord]:
        """Every relayed record stored here with its provenance."""
        r, p = records.c, relayed_records.c
        query = select(r.provider_code, r.resource_code, r.record_id, r.sequence, r.operation, r.payload,
                       r.payload_key, p.hops) \
            .select_from(records.join(relayed_records, (r.provider_code == p.provider_code)
                                      & (r.resource_code == p.resource_code) & (r.record_id == p.record_id)))
        for row in self.connection.execute(query):
            yield RelayedRecord(row.provider_code, row.resource_code,
                                Record(row.record_id, row.sequence, Operation(row.operation),
                                       json.loads(self._open(row))),
                                json.loads(row.hops))

    def _open(self, row: Any) -> str:
        return open_payload(self.sealer, self.connection, row)

    def cursor(self, name: str) -> int:
        value = self.connection.execute(select(tier_cursors.c.position).where(tier_cursors.c.name == name)).scalar()
        return int(value or 0)

    def set_cursor(self, name: str, position: int) -> None:
        c = tier_cursors.c
        if not self.connection.execute(update(tier_cursors).where(c.name == name).values(position=position)).rowcount:
            self.connection.execute(insert(tier_cursors).values(name=name, position=position))


REQUESTER, PROVIDER = "REQUESTER", "PROVIDER"


@dataclass(frozen=True)
class ForwardedDemand:
    """A demand that crossed a tier link (回流): this node's ``demand_id``, and the peer's."""

    demand_id: str
    peer_node: str
    peer_demand_id: str
    side: str
    """REQUESTER: forwarded upward from here; PROVIDER: filed here by a lower node."""
    platform: str
    """The node platform the answer (PROVIDER) or the records go through."""


class ForwardedDemands:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def add(self, forwarded: ForwardedDemand, now: dt.datetime) -> None:
        self.connection.execute(insert(forwarded_demands).values(
            demand_id=forwarded.demand_id, peer_node=forwarded.peer_node, peer_demand_id=forwarded.peer_demand_id,
            side=forwarded.side, platform=forwarded.platform, created_at=now))

    def get(self, demand_id: str) -> ForwardedDemand | None:
        row = self.connection.execute(select(forwarded_demands).where(
            forwarded_demands.c.demand_id == demand_id)).first()
        return ForwardedDemand(row.demand_id, row.peer_node, row.peer_demand_id, row.side, row.platform) \
            if row else None

    def from_peer(self, peer_node: str, peer_demand_id: str, side: str) -> ForwardedDemand | None:
        c = forwarded_demands.c
        row = self.connection.execute(select(forwarded_demands).where(
            c.peer_node == peer_node, c.peer_demand_id == peer_demand_id, c.side == side)).first()
        return ForwardedDemand(row.demand_id, row.peer_node, row.peer_demand_id, row.side, row.platform) \
            if row else None


class TierDisputes:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def mark(self, provider_code: str, resource_code: str, record_id: str, objection_id: str, sender_node: str,
             disputed: bool, now: dt.datetime) -> bool:
        """Set the objection's mark as the sender's notice says; False when nothing changed (a redelivery,
        or a "raised" notice for an objection already answered: answered is final)."""
        c = tier_disputes.c
        key = (c.provider_code == provider_code, c.resource_code == resource_code, c.record_id == record_id,
               c.objection_id == objection_id)
        current = self.connection.execute(select(c.disputed).where(*key)).first()
        if current is None:
            self.connection.execute(insert(tier_disputes).values(
                provider_code=provider_code, resource_code=resource_code, record_id=record_id,
                objection_id=objection_id, sender_node=sender_node, disputed=disputed, changed_at=now))
            return True
        if not current.disputed or current.disputed == disputed:
            return False
        self.connection.execute(update(tier_disputes).where(*key).values(disputed=False, changed_at=now))
        return True



@dataclass(frozen=True)
class ForwardedObjection:
    """An objection that crossed a tier link: this node's ``objection_id``, and the peer's."""

    objection_id: str
    peer_node: str
    peer_objection_id: str
    side: str
    """REQUESTER: forwarded down from here toward the record's origin; PROVIDER: filed here by an upper node."""
    platform: str
    """The node platform the document went down (REQUESTER) or the answer goes up (PROVIDER) through."""


class ForwardedObjections:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def add(self, forwarded: ForwardedObjection, now: dt.datetime) -> None:
        self.connection.execute(insert(forwarded_objections).values(
            objection_id=forwarded.objection_id, peer_node=forwarded.peer_node,
            peer_objection_id=forwarded.peer_objection_id, side=forwarded.side, platform=forwarded.platform,
            created_at=now))

    def get(self, objection_id: str, side: str) -> ForwardedObjection | None:
        c = forwarded_objections.c
        row = self.connection.execute(select(forwarded_objections).where(
            c.objection_id == objection_id, c.side == side)).first()
        return _forwarded_objection(row) if row else None

    def from_peer(self, peer_node: str, peer_objection_id: str, side: str) -> ForwardedObjection | None:
        c = forwarded_objections.c
        row = self.connection.execute(select(forwarded_objections).where(
            c.peer_node == peer_node, c.peer_objection_id == peer_objection_id, c.side == side)).first()
        return _forwarded_objection(row) if row else None


def _forwarded_objection(row: Any) -> ForwardedObjection:
    return ForwardedObjection(row.objection_id, row.peer_node, row.peer_objection_id, row.side, row.platform)
