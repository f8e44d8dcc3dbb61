"""The security officer's pages (安全审计员): the audit trail — search, detail, chain status and
verification, export, charts. Each asks the policy for ``audit.read`` first, as AuditService does."""

from __future__ import annotations

import collections
import csv
import datetime as dt
import io
import time

from markupsafe import Markup, escape
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from catalog.errors import InvalidField, NotFound
from catalog.lists import default_masking
from catalog.model import ResourceStatus
from node.storage.audit_repository import AuditFilter
from security.audit import AuditEntry
from security.policy import AUDIT_TRAIL, Action

from .app import Console, Context, Page
from .charts import Bar, bar_chart, stacked_columns

PAGE_SIZE = 50
CHART_SAMPLE = 20_000
"""The charts read at most this many of the newest entries in their time range (said on the page)."""
DENIALS = ("PERMISSION_DENIED", "UNAUTHENTICATED")
BEIJING = dt.timezone(dt.timedelta(hours=8))
VIA_NAMES = {"console": "控制台「立即核验」", "rpc": "VerifyAudit 调用（exnode audit verify）", "daily": "节点每日自动核验"}


def _require(context: Context) -> None:
    context.target = str(AUDIT_TRAIL)
    assert context.node is not None
    context.node.policy.require(context.principal, Action.AUDIT_READ, AUDIT_TRAIL)


def _time(value: str, field: str) -> dt.datetime | None:
    """A time from a form field (``datetime-local`` gives no offset: Beijing time is meant)."""
    value = value.strip()
    if not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidField.one(field, f"{value!r} 不是有效时间（例如 2026-11-23T08:00）") from None
    return when if when.tzinfo else when.replace(tzinfo=BEIJING)


def audit_filter(request: Request) -> AuditFilter:
    q = request.query_params
    return AuditFilter(since=_time(q.get("since", ""), "since"), until=_time(q.get("until", ""), "until"),
                       subject=q.get("subject", "").strip(), department_code=q.get("dept", "").strip(),
                       action=q.get("action", "").strip(), target=q.get("target", "").strip(),
                       result=q.get("result", "").strip())


FILTER_KEYS = ("since", "until", "subject", "dept", "action", "target", "result")


def search(context: Context, request: Request, form: FormData | None) -> Page:
    _require(context)
    node = context.node
    assert node is not None
    flt = audit_filter(request)
    token = request.query_params.get("page", "")
    started = time.perf_counter()
    page = node.audit.query(flt, PAGE_SIZE, token)
    context.timings["query"] = time.perf_counter() - started
    query = {k: request.query_params.get(k, "") for k in FILTER_KEYS}
    context.detail = f"{len(page.entries)} entries"
    return Page("audit.html", {"entries": page.entries, "rows": _rows(page.entries),
                               "next_token": page.next_page_token, "query": query,
                               "first_page": not token, "results": ("OK", "STARTED", *DENIALS, "INVALID_ARGUMENT",
                                                                   "NOT_FOUND", "FAILED_PRECONDITION")})


def _rows(entries: list[AuditEntry]) -> Markup:
    """The result table's rows, built here rather than by the template: 50 rows of 8 cells through Jinja's
    attribute lookups and filters cost as much as the query that read them (every value still escaped)."""
    out = []
    for e in entries:
        r = e.record
        detail = r.detail if len(r.detail) <= 80 else r.detail[:79] + "…"
        out.append(f'<tr class="result-{escape(r.result)}">\n  <td class="num"><a href="/audit/entry/{e.sequence}">'
                   f'{e.sequence}</a></td>\n  <td>{r.at.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")}</td>\n'
                   f'  <td>{escape(r.result)}</td>\n  <td>{escape(r.action)}</td>\n  <td>{escape(r.subject)}</td>\n'
                   f'  <td>{escape(r.department_code)}</td>\n  <td class="cut">{escape(r.target)}</td>\n'
                   f'  <td class="cut" title="{escape(r.detail)}">{escape(detail)}</td>\n</tr>\n')
    return Markup("".join(out))


def entry(context: Context, request: Request, form: FormData | None) -> Page:
    _require(context)
    assert context.node is not None
    sequence = request.path_params["sequence"]
    found = context.node.audit.entry(sequence)
    if found is None:
        raise NotFound("audit entry", str(sequence))
    context.target = f"audit:{sequence}"
    return Page("audit_entry.html", {"entry": found})


def chain(context: Context, request: Request, form: FormData | None) -> Page:
    """The chain's head and last checkpoint, and the last verification from the database (any replica's,
    the daily one's or an RPC's: every replica shows the same); "verify now" runs one and records it."""
    _require(context)
    assert context.node is not None
    result = None
    if form is not None:  # "verify now"
        result = context.node.audit.verify_recorded(context.principal, "console")
        context.detail = "verified: OK" if result.ok else f"verify FAILED at {result.first_broken_sequence}"
    status = context.node.audit.status()
    return Page("audit_chain.html", {"status": status, "result": result, "last": context.node.audit.last_verification(),
                                     "via_names": VIA_NAMES})


def export_jsonl(context: Context, request: Request, form: FormData | None) -> Page:
    """The same JSON lines as ``exnode audit export`` (verifiable offline with ``audit verify --file``)."""
    _require(context)
    assert context.node is not None
    flt = audit_filter(request)
    lines = list(context.node.audit.export(flt.since, flt.until))
    context.detail = f"export jsonl: {len(lines)} lines"
    body = ("\n".join(lines) + "\n").encode("utf-8")
    return Page(response=Response(body, media_type="application/x-ndjson", headers={
        "content-disposition": 'attachment; filename="audit.jsonl"'}))


def export_csv(context: Context, request: Request, form: FormData | None) -> Page:
    """The filtered entries as CSV with a BOM, so Excel (WPS) opens the Chinese text correctly."""
    _require(context)
    assert context.node is not None
    flt = audit_filter(request)
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow(["sequence", "at", "request_id", "subject", "department_code", "roles", "action", "target",
                     "result", "peer", "detail", "entry_hash"])
    token, count = "", 0
    while True:
        page = context.node.audit.query(flt, 500, token)
        for e in page.entries:
            r = e.record
            writer.writerow([e.sequence, r.at.isoformat(), r.request_id, r.subject, r.department_code,
                             ",".join(r.roles), r.action, r.target, r.result, r.peer, r.detail, e.entry_hash.hex()])
            count += 1
        token = page.next_page_token
        if not token:
            break
    context.detail = f"export csv: {count} entries"
    return Page(response=Response(out.getvalue().encode("utf-8"), media_type="text/csv; charset=utf-8", headers={
        "content-disposition": 'attachment; filename="audit.csv"'}))


def _recent(context: Context, since: dt.datetime) -> list[AuditEntry]:
    assert context.node is not None
    found: list[AuditEntry] = []
    token = ""
    while len(found) < CHART_SAMPLE:
        page = context.node.audit.query(AuditFilter(since=since), 500, token)
        found.extend(page.entries)
        token = page.next_page_token
        if not token:
            break
    return found[:CHART_SAMPLE]


def _personal_resources(context: Context) -> dict[str, str]:
    """Codes (and names) of published resources with items that hold personal identifiers."""
    assert context.node is not None
    from security.identity import Principal

    system = Principal.system(context.node.config.node.id)
    out = {}
    for resource in context.node.catalog.export(system, ResourceStatus.PUBLISHED):
        meta = resource.latest.metadata
        if default_masking(i.name for i in meta.items):
            out[resource.code] = meta.name
    return out


def charts(context: Context, request: Request, form: FormData | None) -> Page:
    _require(context)
    text = request.query_params.get("days", "7").strip() or "7"
    if not text.isdigit() or not 1 <= int(text) <= 90:
        raise InvalidField.one("days", f"{text!r} is not a number of days from 1 to 90")
    days = int(text)
    now = dt.datetime.now(BEIJING)
    since = (now - dt.timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    entries = _recent(context, since)
    per_day: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    reasons: collections.Counter[str] = collections.Counter()
    subjects: collections.Counter[str] = collections.Counter()
    personal_hits: collections.Counter[str] = collections.Counter()
    personal = _personal_resources(context)
    for e in entries:
        r = e.record
        if r.subject:
            subjects[f"{r.subject}@{r.department_code}" if r.department_code else r.subject] += 1
        if r.result in DENIALS:
            reason = f"{r.result}: {_reason(r.detail)}"
            reasons[reason] += 1
            per_day[r.at.astimezone(BEIJING).strftime("%m-%d")][reason] += 1
        if r.target.startswith("resource:") and r.target[9:] in personal:
            personal_hits[r.target[9:]] += 1
    series = [name for name, _ in reasons.most_common(6)]
    day_labels = [(since + dt.timedelta(days=i)).strftime("%m-%d") for i in range(days)]
    columns = [(label, {s: per_day[label][s] for s in series}) for label in day_labels]
    context.detail = f"charts over {len(entries)} entries since {since.isoformat()}"
    return Page("audit_charts.html", {
        "days": days, "sampled": len(entries), "limit": CHART_SAMPLE,
        "denials_chart": stacked_columns("按原因统计的拒绝次数（每日）", columns, series),
        "subjects_chart": bar_chart("最活跃的主体", [Bar(s, n) for s, n in subjects.most_common(10)]),
        "personal_chart": bar_chart("含个人信息资源的访问次数",
                                    [Bar(personal.get(c, c), n, c) for c, n in personal_hits.most_common(10)]),
        "reasons": reasons.most_common(), "subjects": subjects.most_common(10),
        "personal": [(c, personal.get(c, c), n) for c, n in personal_hits.most_common(10)]})


def _reason(detail: str) -> str:
    """The reason of a denial without the request specifics: "console GET /x: reason" → "reason"."""
    text = detail.split(": ", 1)[1] if detail.startswith("console ") and ": " in detail else detail
    return text.split(";")[0][:60] or "（无说明）"


def register(console: Console) -> None:
    console.page("/audit", "AuditService/QueryAudit", search)
    console.page("/audit/entry/{sequence:int}", "AuditService/QueryAudit", entry)
    console.page("/audit/chain", "AuditService/QueryAudit", chain)
    console.page("/audit/chain", "AuditService/VerifyAudit", chain, methods=("POST",))
    console.page("/audit/export.jsonl", "AuditService/ExportAudit", export_jsonl)
    console.page("/audit/export.csv", "AuditService/ExportAudit", export_csv)
    console.page("/audit/charts", "AuditService/QueryAudit", charts)
