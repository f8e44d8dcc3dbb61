"""统计月报: the month's statistics from the database, as a signed set of files (CSV and XML).

Per resource: consumers, grants, deliveries, records, queries and verifications, objections; per
department: obligations on time / overdue / never delivered at the month's end, stages answered within
their deadline or late, stages overdue, disputes, objections open and closed. The node signs the files'
digests (security/report.py) with its active key.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from catalog import lists as domain
from catalog.report import DepartmentLine, MonthlyReport, ResourceLine, month_range
from node.files import report as report_files
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


class ReportApplication:
    def __init__(self, lists: ListsApplication, signer: SigningKey, node_id: str, node_department: str) -> None:
        self.lists = lists
        self.signer = signer
        self.node_id = node_id
        self.node_department = node_department

    def monthly(self, principal: Principal, month: str) -> SignedReport:
        """The month's report (the node's department or an operator: it reports the whole node)."""
        policy = self.lists.policy
        policy.require(principal, Action.LISTS_EXPORT_ALL, LISTS)
        report = self.compute(month)
        files = report_files.files(report)
        signature = self.signer.sign(report_signing_input(self.node_id, month, files))
        return SignedReport(report, files, self.signer.kid, self.signer.algorithm, signature)

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
                entry.records_received if entry else 0, 0, 0, entry.objections if entry else 0,
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

