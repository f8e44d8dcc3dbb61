"""The catalog administrator's and reviewer's pages: drafts, publish, retire; the review queue (approve,
or reject with a reason); the responsibility list with each department's compliance as a chart."""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request

from catalog.lists import OPEN_STATES, Compliance
from catalog.model import VersionState
from node.storage.catalog_repository import ResourceFilter
from node.storage.lists_repository import DemandFilter
from security.policy import Action, Target

from .app import Console, Context, Page
from .charts import stacked_columns
from .pages_partner import STATE_NAMES

COMPLIANCE_NAMES = {"ON_TIME": "按时", "OVERDUE": "逾期", "NEVER_DELIVERED": "从未提供", "NOT_YET_DUE": "未到期",
                    "UNSCHEDULED": "不定期"}


def _catalog_page(page: Any) -> tuple[list, str]:
    return page.resources, page.next_page_token


def _lists_page(page: Any) -> tuple[list, str]:
    return page.rows, page.next_page_token


def _every_page(fetch: Callable[[str], tuple[list, str]]) -> list:
    """All rows of a paged use case (a department's own resources or demands: hundreds at most)."""
    found, token = [], ""
    while True:
        rows, token = fetch(token)
        found.extend(rows)
        if not token:
            return found


def _require_admin(context: Context) -> None:
    """The administrator's area: the policy's catalog.create for the person's own department."""
    assert context.node is not None
    context.node.policy.require(context.principal, Action.CATALOG_CREATE,
                                Target.resource("", context.principal.department_code))


def drafts(context: Context, request: Request, form: FormData | None) -> Page:
    _require_admin(context)
    node = context.node
    assert node is not None
    context.target = "catalog"
    department = context.principal.department_code
    found = _every_page(lambda token: _catalog_page(node.catalog.list(
        context.principal, ResourceFilter(provider_code=department), 200, token)))
    pending = [r for r in found if r.latest.state is VersionState.DRAFT]
    return Page("drafts.html", {"pending": pending, "resources": found, "department": department})


def publish(context: Context, request: Request, form: FormData | None) -> Page:
    assert context.node is not None and form is not None
    code = str(form.get("code", ""))
    context.target = f"resource:{code}"[:200]
    expected = str(form.get("expected_version", "0") or "0")
    resource = context.node.catalog.publish(context.principal, code, int(expected) if expected.isdigit() else 0)
    return Page(redirect="/admin/drafts", flash=f"已发布 {code} 版本 v{resource.latest.version}")


def retire(context: Context, request: Request, form: FormData | None) -> Page:
    assert context.node is not None and form is not None
    code = str(form.get("code", ""))
    context.target = f"resource:{code}"[:200]
    context.detail = str(form.get("reason", ""))[:500]
    context.node.catalog.retire(context.principal, code)
    return Page(redirect="/admin/drafts", flash=f"已下线 {code}")


def review(context: Context, request: Request, form: FormData | None) -> Page:
    node = context.node
    assert node is not None
    context.target = "lists:demands"
    department = context.principal.department_code
    found = _every_page(lambda token: _lists_page(node.lists.list_demands(
        context.principal, DemandFilter(provider_code=department), 500, token)))
    queue = [d for d in found if d.state in OPEN_STATES]
    decided = [d for d in found if d.state not in OPEN_STATES][:50]
    may_decide = bool(node.policy.decide(context.principal, Action.DEMAND_DECIDE, Target.demand("", "", department)))
    return Page("review.html", {"queue": queue, "decided": decided, "state_names": STATE_NAMES,
                                "may_decide": may_decide})


def decide(context: Context, request: Request, form: FormData | None) -> Page:
    assert context.node is not None and form is not None
    demand_id = request.path_params["demand_id"]
    context.target = f"demand:{demand_id}"
    approve = form.get("decision") == "approve"
    reason = str(form.get("reason", "")).strip()
    demand = context.node.lists.decide(context.principal, demand_id, approve, reason)
    context.detail = f"{demand.state.value}" + (f": {reason}" if reason else "")
    return Page(redirect="/review", flash=f"需求 {demand_id}：{STATE_NAMES.get(demand.state.value)}")


def compliance(context: Context, request: Request, form: FormData | None) -> Page:
    node = context.node
    assert node is not None
    context.target = "lists:responsibilities"
    lines = node.lists.obligations(context.principal)
    per_department: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    names: dict[str, str] = {}
    for line in lines:
        obligation = line.obligation
        per_department[obligation.department_code][COMPLIANCE_NAMES[line.status.compliance.value]] += 1
        names.setdefault(obligation.department_code, obligation.provider_name or obligation.department_code)
    series = [COMPLIANCE_NAMES[c.value] for c in (Compliance.ON_TIME, Compliance.OVERDUE, Compliance.NEVER_DELIVERED,
                                                  Compliance.NOT_YET_DUE, Compliance.UNSCHEDULED)]
    columns = [(names[code][:8], dict(counts)) for code, counts in sorted(per_department.items())]
    late = sorted((line for line in lines if line.status.compliance in (Compliance.OVERDUE,
                                                                        Compliance.NEVER_DELIVERED)),
                  key=lambda line: -line.status.overdue_by.total_seconds())
    return Page("compliance.html", {
        "chart": stacked_columns("各部门履职情况", columns, series, width=max(640, 60 * len(columns))),
        "lines": lines, "late": late, "names": COMPLIANCE_NAMES, "departments": sorted(per_department.items()),
        "department_names": names, "series": series})


def register(console: Console) -> None:
    console.page("/admin/drafts", "CatalogService/ListResources", drafts)
    console.page("/admin/publish", "CatalogService/PublishResource", publish, methods=("POST",))
    console.page("/admin/retire", "CatalogService/RetireResource", retire, methods=("POST",))
    console.page("/review", "ListsService/ListDemands", review)
    console.page("/review/{demand_id}", "ListsService/DecideDemand", decide, methods=("POST",))
    console.page("/compliance", "ListsService/ListObligations", compliance)
