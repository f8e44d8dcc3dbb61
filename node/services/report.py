"""统计月报: the month's statistics from the database, as a signed set of files (CSV and XML).

Per resource: consumers, grants, deliveries, records, queries and verifications, objections; per
department: obligations on time / overdue / never delivered at the month's end, stages answered within
their deadline or late, stages overdue, disputes, objections open and closed. The node signs the files'
digests (security/report.py) with its active key.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from adapters.codecs import relay
from catalog import lists as domain
from catalog.report import DepartmentLine, MonthlyReport, ResourceLine, aggregate, month_range
from node.files import report as report_files
from node.services.errors import BrokerUnavailable, NotReady
from node.services.lists import LISTS, ListsApplication, _published
from security.identity import Principal
from security.keys import SigningKey
from security.policy import Action
from security.report import report_signing_input


@dataclass(frozen=True)
class SignedReport:
    report: MonthlyReport
    files: dict[str, bytes]
    kid: str
    algorithm: str
    signature: bytes


Publish = Callable[[list[tuple[str, bytes, str, str]]], None]
"""(queue, body, content type, message id) → published with confirms, or an exception."""


class ReportApplication:
    def __init__(self, lists: ListsApplication, signer: SigningKey, node_id: str, node_department: str,
                 upward: Sequence[str] = (), publish: Publish | None = None) -> None:
        self.lists = lists
        self.signer = signer
        self.node_id = node_id
        self.node_department = node_department
        self.upward = tuple(upward)
        """The queues of the upper-node platforms (shovelled to the upper nodes' inbound queues)."""
        self.publish = publish

    def monthly(self, principal: Principal, month: str, region: bool = False) -> SignedReport:
        """The month's report (the node's department or an operator: it reports the whole node); with
        ``region``, summed with the reports lower nodes sent up for the month."""
        policy = self.lists.policy
        policy.require(principal, Action.LISTS_EXPORT_ALL, LISTS)
        report = self.region(month) if region else self.compute(month)
        files = report_files.files(report)
        signature = self.signer.sign(report_signing_input(self.node_id, month, files))
        return SignedReport(report, files, self.signer.kid, self.signer.algorithm, signature)

    def region(self, month: str) -> MonthlyReport:
        own = self.compute(month)
        with self.lists.uow() as uow:
            stored = uow.report.lower_reports(month)
        return aggregate(own, [report_files.from_xml(xml.encode("utf-8"), f"report of node {node}")
                               for node, xml in stored])

    def send_upward(self, principal: Principal, month: str) -> tuple[MonthlyReport, list[str]]:
        """Send the month's report (this node's with its lower nodes') to every upper node, signed by
        this node; the upper node keeps the newest of each month. Returns the report and the queues."""
        self.lists.policy.require(principal, Action.LISTS_EXPORT_ALL, LISTS)
        if not self.upward or self.publish is None:
            raise NotReady("this node has no upper node: no platform of kind node names an upper_node in "
                           "platforms.toml")
        report = self.region(month)
        xml = report_files.to_xml(report).decode("utf-8")
        body = relay.encode_report({"month": month, "generated": report.generated.isoformat(), "xml": xml},
                                   self.node_id, self.signer)
        message_id = f"report:{self.node_id}:{month}:{report.generated.isoformat()}"
        try:
            self.publish([(queue, body, relay.REPORT_CONTENT_TYPE, message_id) for queue in self.upward])
        except Exception as error:  # pika's errors: the broker is down or refused
            raise BrokerUnavailable(f"the report was not sent upward: {error}") from None
        return report, list(self.upward)

    def compute(self, month: str) -> MonthlyReport:
        start, end = month_range(month)
        now = self.lists.clock()
        with self.lists.uow() as uow:
            resources = _published(uow)
            activity = uow.report.resource_activity(start, end)
            derived = domain.derived_obligations(resources)
            obligations = domain.merge_obligations(derived, uow.lists.explicit_obligations())
            compliance = [(o, domain.compliance(o, uow.lists.delivery_times(o.department_code, o.resource_code), end))
                          for o in obligations]
            demand_rows = uow.report.demand_rows(end)
            disputes = uow.report.dispute_counts(start, end)
            objection_rows = uow.report.objection_rows(end)
        names = {r.code: (r.latest.metadata.name, r.latest.metadata.provider_code) for r in resources}
        resource_lines = []
        for code in sorted(set(names) | set(activity)):
            name, provider = names.get(code, ("", ""))
            entry = activity.get(code)
            resource_lines.append(ResourceLine(
                code, name, provider, len(entry.consumers) if entry else 0, entry.grants if entry else 0,
                entry.deliveries if entry else 0, entry.records_delivered if entry else 0,
                entry.records_received if entry else 0, entry.queries if entry else 0,
                entry.verifications if entry else 0, entry.objections if entry else 0,
                entry.objections_upheld if entry else 0))
        states: dict[str, Counter[str]] = defaultdict(Counter)
        for obligation, status in compliance:
            states[obligation.department_code][status.compliance.value] += 1
        answers: dict[str, Counter[str]] = defaultdict(Counter)
        for row in demand_rows:
            for owner, deadline, done in ((row.provider_code, row.answer_deadline, row.answered_at),
                                          (self.node_department, row.compliance_deadline, row.compliance_at)):
                if not owner or deadline is None:
                    continue
                if done is not None and start <= done < end:
                    answers[owner]["late" if done >= deadline else "on_time"] += 1
                elif (done is None or done >= end) and deadline <= min(end, now):
                    answers[owner]["open_overdue"] += 1
        objected: dict[str, Counter[str]] = defaultdict(Counter)
        for row in objection_rows:
            if row.answered_at is None or row.answered_at >= end:
                objected[row.provider_code]["open"] += 1
            elif row.answered_at >= start:
                objected[row.provider_code]["closed"] += 1
        departments = sorted({*states, *answers, *disputes, *objected} - {""})
        department_lines = tuple(DepartmentLine(
            code, states[code][domain.Compliance.ON_TIME.value], states[code][domain.Compliance.OVERDUE.value],
            states[code][domain.Compliance.NEVER_DELIVERED.value], answers[code]["on_time"], answers[code]["late"],
            answers[code]["open_overdue"], disputes[code], objected[code]["open"], objected[code]["closed"])
            for code in departments)
        return MonthlyReport(self.node_id, self.node_department, month, now, tuple(resource_lines), department_lines)


def verify_report(files: dict[str, bytes], node_id: str, month: str, signature: bytes, public_key: object) -> bool:
    """Whether ``signature`` is the node's over these files (``public_key``: a security.keys.PublicKey)."""
    return bool(public_key.verify(report_signing_input(node_id, month, files), signature))  # type: ignore[attr-defined]

