"""The monthly statistics' reads (统计月报): what happened in one month, counted in the database where it is
cheap (deliveries, records) and read as rows where the rule is the domain's (deadlines, states)."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from sqlalchemy import and_, delete, func, insert, or_, select
from sqlalchemy.engine import Connection

from node.storage.tables import audit_entries, deliveries, demands, disputes, grants, objections, tier_reports

QUERY_ACTIONS = ("QueryService/QueryRecords",)
VERIFY_ACTIONS = ("QueryService/VerifyClaim", "rpc/VerifyClaim")
"""The audit actions of the request/response mode: a caller's gRPC call, and a verification another node
asked of this one over RabbitMQ (node/services/remote.py)."""
FORWARDED = "answered by node"
"""In a VerifyClaim entry's detail when another node answered: that node's report counts it, not this one's."""


@dataclass
class ResourceActivity:
    consumers: set[str] = field(default_factory=set)
    grants: int = 0
    deliveries: int = 0
    records_delivered: int = 0
    records_received: int = 0
    objections: int = 0
    objections_upheld: int = 0
    queries: int = 0
    verifications: int = 0


class ReportRepository:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def resource_activity(self, start: dt.datetime, end: dt.datetime) -> dict[str, ResourceActivity]:
        out: dict[str, ResourceActivity] = defaultdict(ResourceActivity)
        g = grants.c
        for row in self.connection.execute(select(g.resource_code, g.consumer_code, g.created_at).where(
                g.created_at < end, g.expires_at >= start, or_(g.revoked_at.is_(None), g.revoked_at >= start))):
            entry = out[row.resource_code]
            entry.consumers.add(row.consumer_code)  # held a live grant at some time in the month
            if row.created_at >= start:
                entry.grants += 1
        d = deliveries.c
        in_month = and_(d.delivered_at >= start, d.delivered_at < end)
        for resource, consumer, count, total in self.connection.execute(
                select(d.resource_code, d.consumer_code, func.count(), func.sum(d.records)).where(in_month)
                .group_by(d.resource_code, d.consumer_code)):
            entry = out[resource]
            if not consumer:  # records received from the provider
                entry.records_received += int(total or 0)
            else:
                entry.deliveries += int(count)
                entry.records_delivered += int(total or 0)
        o = objections.c
        for row in self.connection.execute(select(o.resource_code, o.state, o.created_at, o.answered_at).where(
                or_(and_(o.created_at >= start, o.created_at < end), and_(o.answered_at >= start, o.answered_at < end)))):
            entry = out[row.resource_code]
            if start <= row.created_at < end:
                entry.objections += 1
            if row.state == "CORRECTED" and row.answered_at is not None and start <= row.answered_at < end:
                entry.objections_upheld += 1
        for resource, queries, verifications in self.request_counts(start, end):
            out[resource].queries += queries
            out[resource].verifications += verifications
        return dict(out)

    def request_counts(self, start: dt.datetime, end: dt.datetime) -> list[tuple[str, int, int]]:
        """(resource, queries, verifications) this node answered in the month, from the audit trail: every
        answered call has one entry (result OK) naming its resource; refusals are not exchanges. Why the
        trail: it is the one record of every call, including verifications other nodes asked over RabbitMQ.
        Entries purged by audit retention before the report is made are not counted."""
        a = audit_entries.c
        counted: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        rows = self.connection.execute(select(a.action, a.target, a.detail).where(
            a.at >= start, a.at < end, a.result == "OK", a.action.in_(QUERY_ACTIONS + VERIFY_ACTIONS)))
        for action, target, detail in rows:
            kind, _, resource = target.partition(":")
            if kind != "resource" or not resource:
                continue
            if action in QUERY_ACTIONS:
                counted[resource][0] += 1
            elif FORWARDED not in detail:
                counted[resource][1] += 1
        return [(resource, q, v) for resource, (q, v) in sorted(counted.items())]

    def demand_rows(self, end: dt.datetime) -> list:
        c = demands.c
        return list(self.connection.execute(select(
            c.id, c.requester_code, c.provider_code, c.created_at, c.compliance_deadline, c.compliance_at,
            c.answer_deadline, c.answered_at).where(c.created_at < end)))

    def dispute_counts(self, start: dt.datetime, end: dt.datetime) -> Counter[str]:
        """Disputes filed in the month, per department involved (requester and provider each)."""
        c = disputes.c
        counts: Counter[str] = Counter()
        for row in self.connection.execute(select(c.requester_code, c.provider_code).where(
                c.created_at >= start, c.created_at < end)):
            counts[row.requester_code] += 1
            counts[row.provider_code] += 1
        return counts

    def objection_rows(self, end: dt.datetime) -> list:
        c = objections.c
        return list(self.connection.execute(select(c.provider_code, c.created_at, c.answered_at).where(
            c.created_at < end)))

    def put_lower_report(self, sender_node: str, month: str, xml: str, generated: str, now: dt.datetime) -> bool:
        """Keep the newest report of (sender, month): False when the stored one is as new or newer."""
        c = tier_reports.c
        row = self.connection.execute(select(c.generated).where(c.sender_node == sender_node, c.month == month)).first()
        if row is not None and dt.datetime.fromisoformat(row.generated) >= dt.datetime.fromisoformat(generated):
            return False
        self.connection.execute(delete(tier_reports).where(c.sender_node == sender_node, c.month == month))
        self.connection.execute(insert(tier_reports).values(sender_node=sender_node, month=month, xml=xml,
                                                            generated=generated, received_at=now))
        return True

    def lower_reports(self, month: str) -> list[tuple[str, str]]:
        """(sender node, XML) of every lower node's report of the month."""
        c = tier_reports.c
        rows = self.connection.execute(select(c.sender_node, c.xml).where(c.month == month).order_by(c.sender_node))
        return [(row.sender_node, row.xml) for row in rows]
