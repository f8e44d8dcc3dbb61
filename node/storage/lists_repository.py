"""Persistence of the responsibility list's explicit entries, demands, grants and deliveries."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from sqlalchemy import and_, bindparam, case, func, insert, or_, select, update
from sqlalchemy.engine import Connection, Row

from catalog.disputes import Dispute, DisputeState
from catalog.lists import (
    OPEN_STATES,
    STAGE_STATES,
    Demand,
    DemandRequest,
    DemandState,
    Grant,
    GrantKind,
    Obligation,
)
from catalog.model import UpdateCycle
from node.storage import generations
from node.storage.errors import StorageError
from node.storage.tables import deliveries, demands, disputes, grants, obligations, receipts


class StaleDemand(StorageError):
    """The demand changed since it was read (another reviewer decided first)."""


@dataclass(frozen=True)
class DemandFilter:
    department_code: str = ""
    """Demands this department filed or is asked to provide."""
    requester_code: str = ""
    provider_code: str = ""
    state: DemandState | None = None
    visible_to: str | None = None
    """Policy scoping: only demands this department filed or provides (None: all)."""
    escalated: bool = False
    """Only demands escalated to the coordinator (a stage went past its deadline)."""
    due_after: dt.datetime | None = None
    due_before: dt.datetime | None = None
    """Only demands with a stage open and its deadline in (due_after, due_before]."""


@dataclass(frozen=True)
class GrantFilter:
    department_code: str = ""
    resource_code: str = ""
    visible_to: str | None = None


@dataclass(frozen=True)
class DeliveryRow:
    """One delivery (records received from a provider, or relayed to a consumer) and its receipt."""

    provider_code: str
    resource_code: str
    consumer_code: str
    delivered_at: dt.datetime
    batch_id: str
    records: int
    receipted_at: dt.datetime | None


def _demand(row: Row) -> Demand:
    request = DemandRequest(
        requester_code=row.requester_code, resource_code=row.resource_code, description=row.description,
        items=tuple(json.loads(row.items)), purpose=row.purpose, legal_basis=row.legal_basis,
        frequency=UpdateCycle(row.frequency) if row.frequency else None, contact=row.contact,
        kind=GrantKind(row.kind), daily_quota=row.daily_quota)
    return Demand(row.id, request, DemandState(row.state), row.created_at, row.updated_at, row.review_deadline,
                  row.provider_code, row.resource_name, row.reason, row.decided_by, row.grant_id, row.version,
                  compliance_deadline=row.compliance_deadline, compliance_at=row.compliance_at,
                  compliance_by=row.compliance_by, answer_deadline=row.answer_deadline, answered_at=row.answered_at,
                  escalated_at=row.escalated_at, escalated_stage=row.escalated_stage)


def _demand_values(demand: Demand) -> dict:
    r = demand.request
    return {
        "id": demand.id, "requester_code": r.requester_code, "provider_code": demand.provider_code,
        "resource_code": r.resource_code, "resource_name": demand.resource_name, "description": r.description,
        "items": json.dumps(list(r.items), ensure_ascii=False), "purpose": r.purpose, "legal_basis": r.legal_basis,
        "frequency": r.frequency.value if r.frequency else "", "contact": r.contact, "state": demand.state.value,
        "reason": demand.reason, "decided_by": demand.decided_by, "grant_id": demand.grant_id,
        "created_at": demand.created_at, "updated_at": demand.updated_at, "review_deadline": demand.review_deadline,
        "version": demand.version, "compliance_deadline": demand.compliance_deadline,
        "compliance_at": demand.compliance_at, "compliance_by": demand.compliance_by,
        "answer_deadline": demand.answer_deadline, "answered_at": demand.answered_at,
        "escalated_at": demand.escalated_at, "escalated_stage": demand.escalated_stage,
        "kind": r.kind.value, "daily_quota": r.daily_quota,
    }


DISPUTE_FIELDS = ("id", "demand_id", "requester_code", "provider_code", "resource_code", "duty_basis", "state",
                  "created_at", "updated_at", "provider_deadline", "filed_by", "provider_answer", "provider_by",
                  "provider_at", "decision_reason", "conditions", "decided_by", "decided_at", "escalated_at",
                  "grant_id", "version")


def _dispute(row: Row) -> Dispute:
    values = {name: getattr(row, name) for name in DISPUTE_FIELDS}
    values["state"] = DisputeState(values["state"])
    return Dispute(**values)


def _dispute_values(dispute: Dispute) -> dict:
    values = {name: getattr(dispute, name) for name in DISPUTE_FIELDS}
    values["state"] = dispute.state.value
    return values


@dataclass(frozen=True)
class DisputeFilter:
    department_code: str = ""
    """Disputes this department filed or is asked to answer."""
    state: DisputeState | None = None
    visible_to: str | None = None


def _grant(row: Row) -> Grant:
    return Grant(row.id, row.consumer_code, row.provider_code, row.resource_code, tuple(json.loads(row.items)),
                 row.expires_at, json.loads(row.masking), row.demand_id, row.created_at, row.revoked_at,
                 row.revoked_reason, clear_delivery=bool(row.clear_delivery), kind=GrantKind(row.kind),
                 daily_quota=row.daily_quota, purpose=row.purpose, legal_basis=row.legal_basis)


def _obligation(row: Row) -> Obligation:
    return Obligation(row.department_code, row.resource_code, row.resource_name, UpdateCycle(row.update_cycle),
                      row.grace_days, row.contact, explicit=True, since=row.created_at)


_GRANTS_FOR = select(grants).where(grants.c.consumer_code == bindparam("consumer"),
                                   grants.c.resource_code == bindparam("resource"), grants.c.kind == bindparam("kind"))
"""Every query, verification and subscription asks this: built once."""


class ListsRepository:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    # -- responsibility list ----------------------------------------------------------------------------
    def explicit_obligations(self, department_code: str = "") -> list[Obligation]:
        query = select(obligations)
        if department_code:
            query = query.where(obligations.c.department_code == department_code)
        return [_obligation(row) for row in self.connection.execute(query)]

    def put_obligation(self, obligation: Obligation, created_by: str, now: dt.datetime) -> None:
        values = {"resource_name": obligation.resource_name, "update_cycle": obligation.update_cycle.value,
                  "grace_days": obligation.grace_days, "contact": obligation.contact}
        key = and_(obligations.c.department_code == obligation.department_code,
                   obligations.c.resource_code == obligation.resource_code)
        if self.connection.execute(update(obligations).where(key).values(**values)).rowcount == 0:
            self.connection.execute(insert(obligations).values(
                department_code=obligation.department_code, resource_code=obligation.resource_code,
                created_at=now, created_by=created_by, **values))

    def delivery_times(self, provider_code: str, resource_code: str, consumer_code: str = "") -> list[dt.datetime]:
        d = deliveries.c
        rows = self.connection.execute(
            select(d.delivered_at).where(d.provider_code == provider_code, d.resource_code == resource_code,
                                         d.consumer_code == consumer_code).order_by(d.delivered_at))
        return [row.delivered_at for row in rows]

    def has_received(self, provider_code: str, resource_code: str) -> bool:
        """Whether the provider ever delivered records of the resource to this node."""
        d = deliveries.c
        return self.connection.execute(select(d.id).where(
            d.provider_code == provider_code, d.resource_code == resource_code, d.consumer_code == "").limit(1)
        ).first() is not None

    def add_delivery(self, provider_code: str, resource_code: str, consumer_code: str, at: dt.datetime,
                     batch_id: str, records: int) -> None:
        self.connection.execute(insert(deliveries).values(
            provider_code=provider_code, resource_code=resource_code, consumer_code=consumer_code, delivered_at=at,
            batch_id=batch_id, records=records))

    def recent_deliveries(self, department_code: str | None, limit: int = 50) -> list[DeliveryRow]:
        """The newest deliveries to or from a department (None: all), each with whether its receiver sent
        a signed receipt for the batch (records from a provider have no receiver)."""
        d, r = deliveries.c, receipts.c
        query = (select(d.provider_code, d.resource_code, d.consumer_code, d.delivered_at, d.batch_id, d.records,
                        r.received_at)
                 .select_from(deliveries.outerjoin(receipts, and_(r.batch_id == d.batch_id,
                                                                  r.receiver_code == d.consumer_code)))
                 .order_by(d.id.desc()).limit(limit))
        if department_code is not None:
            query = query.where(or_(d.consumer_code == department_code, d.provider_code == department_code))
        return [DeliveryRow(*row) for row in self.connection.execute(query)]

    # -- demands ----------------------------------------------------------------------------------------
    def add_demand(self, demand: Demand) -> None:
        self.connection.execute(insert(demands).values(**_demand_values(demand)))

    def get_demand(self, demand_id: str) -> Demand | None:
        row = self.connection.execute(select(demands).where(demands.c.id == demand_id)).first()
        return _demand(row) if row else None

    def save_demand(self, demand: Demand, expected_version: int) -> None:
        """Compare-and-set on the version: of two concurrent decisions exactly one is stored."""
        values = _demand_values(demand)
        values.pop("id")
        result = self.connection.execute(
            update(demands).where(demands.c.id == demand.id, demands.c.version == expected_version).values(**values))
        if result.rowcount != 1:
            raise StaleDemand(demand.id)

    def list_demands(self, flt: DemandFilter, *, after_id: str, limit: int) -> list[Demand]:
        c = demands.c
        conditions = []
        if flt.department_code:
            conditions.append(or_(c.requester_code == flt.department_code, c.provider_code == flt.department_code))
        if flt.requester_code:
            conditions.append(c.requester_code == flt.requester_code)
        if flt.provider_code:
            conditions.append(c.provider_code == flt.provider_code)
        if flt.state:
            conditions.append(c.state == flt.state.value)
        if flt.visible_to is not None:
            conditions.append(or_(c.requester_code == flt.visible_to, c.provider_code == flt.visible_to))
        if flt.escalated:
            conditions.append(c.escalated_at.is_not(None))
        if flt.due_after is not None or flt.due_before is not None:
            conditions.append(c.state.in_([s.value for s in STAGE_STATES]))
        if flt.due_after is not None:
            conditions.append(c.review_deadline > flt.due_after)
        if flt.due_before is not None:
            conditions.append(c.review_deadline <= flt.due_before)
        if after_id:
            conditions.append(c.id > after_id)
        rows = self.connection.execute(select(demands).where(*conditions).order_by(c.id).limit(limit))
        return [_demand(row) for row in rows]

    def open_demands_due(self, now: dt.datetime, states: frozenset[DemandState] = OPEN_STATES) -> list[Demand]:
        """Demands in one of ``states`` whose stage deadline has passed (through ix_demands_state_deadline)."""
        c = demands.c
        rows = self.connection.execute(select(demands).where(
            c.state.in_(sorted(s.value for s in states)), c.review_deadline <= now).order_by(c.id))
        return [_demand(row) for row in rows]

    def stage_counts(self, now: dt.datetime, tomorrow: dt.datetime, day_after: dt.datetime
                     ) -> dict[str, dict[str, int]]:
        """Per open stage: demands open, past their deadline, and due tomorrow (deadline in (tomorrow,
        day_after]), counted in the database."""
        c = demands.c
        overdue = func.sum(case((c.review_deadline <= now, 1), else_=0))
        due = func.sum(case((and_(c.review_deadline > tomorrow, c.review_deadline <= day_after), 1), else_=0))
        rows = self.connection.execute(
            select(c.state, func.count(), overdue, due).where(c.state.in_([s.value for s in STAGE_STATES]))
            .group_by(c.state))
        return {row[0]: {"open": int(row[1]), "overdue": int(row[2] or 0), "due_tomorrow": int(row[3] or 0)}
                for row in rows}

    def demands_between(self, start: dt.datetime | None, end: dt.datetime | None) -> list[Demand]:
        """Every demand filed in [start, end) (None: unbounded), for timeliness statistics."""
        c = demands.c
        conditions = []
        if start is not None:
            conditions.append(c.created_at >= start)
        if end is not None:
            conditions.append(c.created_at < end)
        return [_demand(row) for row in self.connection.execute(select(demands).where(*conditions).order_by(c.id))]

    def approved_demands(self, requester_code: str, resource_code: str) -> list[Demand]:
        c = demands.c
        rows = self.connection.execute(select(demands).where(
            c.requester_code == requester_code, c.resource_code == resource_code,
            c.state == DemandState.APPROVED.value))
        return [_demand(row) for row in rows]

    # -- disputes ---------------------------------------------------------------------------------------
    def add_dispute(self, dispute: Dispute) -> None:
        self.connection.execute(insert(disputes).values(**_dispute_values(dispute)))

    def get_dispute(self, dispute_id: str) -> Dispute | None:
        row = self.connection.execute(select(disputes).where(disputes.c.id == dispute_id)).first()
        return _dispute(row) if row else None

    def dispute_of(self, demand_id: str) -> Dispute | None:
        row = self.connection.execute(select(disputes).where(disputes.c.demand_id == demand_id)).first()
        return _dispute(row) if row else None

    def save_dispute(self, dispute: Dispute, expected_version: int) -> None:
        values = _dispute_values(dispute)
        values.pop("id")
        result = self.connection.execute(update(disputes).where(
            disputes.c.id == dispute.id, disputes.c.version == expected_version).values(**values))
        if result.rowcount != 1:
            raise StaleDemand(dispute.id)

    def list_disputes(self, flt: DisputeFilter, *, after_id: str, limit: int) -> list[Dispute]:
        c = disputes.c
        conditions = []
        for code in (flt.department_code, flt.visible_to):
            if code:
                conditions.append(or_(c.requester_code == code, c.provider_code == code))
        if flt.state:
            conditions.append(c.state == flt.state.value)
        if after_id:
            conditions.append(c.id > after_id)
        rows = self.connection.execute(select(disputes).where(*conditions).order_by(c.id).limit(limit))
        return [_dispute(row) for row in rows]

    def disputes_awaiting_provider_due(self, now: dt.datetime) -> list[Dispute]:
        c = disputes.c
        rows = self.connection.execute(select(disputes).where(
            c.state == DisputeState.AWAITING_PROVIDER.value, c.provider_deadline <= now).order_by(c.id))
        return [_dispute(row) for row in rows]

    def disputes_by_demand(self, demand_ids: list[str]) -> dict[str, Dispute]:
        found: dict[str, Dispute] = {}
        for start in range(0, len(demand_ids), 500):  # bounded IN lists (SQLite limits bound parameters)
            rows = self.connection.execute(select(disputes).where(
                disputes.c.demand_id.in_(demand_ids[start:start + 500])))
            found.update((row.demand_id, _dispute(row)) for row in rows)
        return found

    # -- grants -----------------------------------------------------------------------------------------
    def add_grant(self, grant: Grant) -> None:
        self.connection.execute(insert(grants).values(
            id=grant.id, consumer_code=grant.consumer_code, provider_code=grant.provider_code,
            resource_code=grant.resource_code, items=json.dumps(list(grant.items), ensure_ascii=False),
            masking=json.dumps(dict(grant.masking), ensure_ascii=False), expires_at=grant.expires_at,
            demand_id=grant.demand_id, created_at=grant.created_at, revoked_at=grant.revoked_at,
            revoked_reason=grant.revoked_reason, clear_delivery=grant.clear_delivery,
            kind=grant.kind.value, daily_quota=grant.daily_quota, purpose=grant.purpose, legal_basis=grant.legal_basis))
        generations.bump(self.connection, generations.GRANTS)

    def get_grant(self, grant_id: str) -> Grant | None:
        row = self.connection.execute(select(grants).where(grants.c.id == grant_id)).first()
        return _grant(row) if row else None

    def revoke_grant(self, grant: Grant) -> None:
        result = self.connection.execute(update(grants).where(grants.c.id == grant.id, grants.c.revoked_at.is_(None))
                                         .values(revoked_at=grant.revoked_at, revoked_reason=grant.revoked_reason))
        if result.rowcount != 1:
            raise StaleDemand(grant.id)
        generations.bump(self.connection, generations.GRANTS)

    def grants_for(self, consumer_code: str, resource_code: str, kind: GrantKind = GrantKind.COPY) -> list[Grant]:
        """The consumer's grants of one kind for the resource: copies (relay, pull, queries) see COPY grants
        only, so a verification grant never lets a record leave the node."""
        rows = self.connection.execute(_GRANTS_FOR, {"consumer": consumer_code, "resource": resource_code,
                                                     "kind": kind.value})
        return [_grant(row) for row in rows]

    def grants_for_consumer(self, consumer_code: str) -> list[Grant]:
        """Every grant of one consumer department (the pull decides which are live)."""
        rows = self.connection.execute(select(grants).where(grants.c.consumer_code == consumer_code,
                                                            grants.c.kind == GrantKind.COPY.value))
        return [_grant(row) for row in rows]

    def list_grants(self, flt: GrantFilter, *, after_id: str, limit: int) -> list[Grant]:
        c = grants.c
        conditions = []
        if flt.department_code:
            conditions.append(or_(c.consumer_code == flt.department_code, c.provider_code == flt.department_code))
        if flt.resource_code:
            conditions.append(c.resource_code == flt.resource_code)
        if flt.visible_to is not None:
            conditions.append(or_(c.consumer_code == flt.visible_to, c.provider_code == flt.visible_to))
        if after_id:
            conditions.append(c.id > after_id)
        rows = self.connection.execute(select(grants).where(*conditions).order_by(c.id).limit(limit))
        return [_grant(row) for row in rows]

