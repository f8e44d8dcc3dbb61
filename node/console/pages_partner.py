"""A partner department's pages (共享部门): the catalog (the same search and filters as ListResources),
a resource's page, its demands (file one, with suggestions), its grants, and subscribing a platform."""

from __future__ import annotations

import time

from starlette.datastructures import FormData
from starlette.requests import Request

from catalog.errors import InvalidField
from catalog.lists import DemandRequest, DemandState, default_masking
from catalog.model import Classification, ResourceStatus, ShareType, UpdateCycle
from node.storage.catalog_repository import ResourceFilter
from node.storage.lists_repository import DemandFilter, GrantFilter
from security.policy import PermissionDenied

from .app import Console, Context, Page

PAGE_SIZE = 20
COMPLIANCE_NAMES = {"ON_TIME": "按时交付", "OVERDUE": "逾期", "NEVER_DELIVERED": "从未交付",
                    "NOT_YET_DUE": "尚未到期", "UNSCHEDULED": "无交付要求"}
STATE_NAMES = {"SUBMITTED": "已提交", "UNDER_REVIEW": "审核中", "APPROVED": "已批准", "REJECTED": "已驳回",
               "FULFILLED": "已销账", "WITHDRAWN": "已撤回", "EXPIRED": "已过期"}


def _enum(kind: type, value: str, field: str) -> object:
    if not value:
        return None
    try:
        return kind[value]
    except KeyError:
        raise InvalidField.one(field, f"unknown value {value!r}") from None


def catalog(context: Context, request: Request, form: FormData | None) -> Page:
    node = context.node
    assert node is not None
    q = request.query_params
    flt = ResourceFilter(query=q.get("q", "").strip(), provider_code=q.get("provider", "").strip(),
                         classification=_enum(Classification, q.get("classification", ""), "classification"),
                         share_type=_enum(ShareType, q.get("share", ""), "share"),
                         update_cycle=_enum(UpdateCycle, q.get("cycle", ""), "cycle"),
                         status=_enum(ResourceStatus, q.get("status", ""), "status"))  # type: ignore[arg-type]
    context.target = "catalog"
    started = time.perf_counter()
    page = node.catalog.list(context.principal, flt, PAGE_SIZE, q.get("page", ""))
    context.timings["search"] = time.perf_counter() - started
    query = {k: q.get(k, "") for k in ("q", "provider", "classification", "share", "cycle", "status")}
    return Page("catalog.html", {
        "resources": page.resources, "total": page.total_size, "next_token": page.next_page_token, "query": query,
        "first_page": not q.get("page"), "classifications": list(Classification), "shares": list(ShareType),
        "cycles": list(UpdateCycle), "statuses": list(ResourceStatus)})


def resource(context: Context, request: Request, form: FormData | None) -> Page:
    node = context.node
    assert node is not None
    code = request.path_params["code"]
    context.target = f"resource:{code}"[:200]
    found, version = node.catalog.get(context.principal, code)
    history = node.catalog.history(context.principal, code)
    meta = version.metadata
    personal = default_masking(i.name for i in meta.items)
    position = node.feed.position_of(context.principal, code)
    quality = None
    if found.status is ResourceStatus.PUBLISHED:
        try:  # 数据质量, for whoever may read the lists (as `exnode lists quality`)
            quality = next(iter(node.objections.quality(context.principal, meta.provider_code, code)), None)
        except PermissionDenied:
            quality = None
    return Page("resource.html", {"resource": found, "version": version, "meta": meta, "history": history,
                                  "personal": personal, "position": position, "quality": quality,
                                  "compliance_names": COMPLIANCE_NAMES,
                                  "can_demand": "demands" in request.app.state.console.areas(context.principal)})


def demands(context: Context, request: Request, form: FormData | None) -> Page:
    node = context.node
    assert node is not None
    q = request.query_params
    state = _enum(DemandState, q.get("state", ""), "state")
    context.target = "lists:demands"
    page = node.lists.list_demands(context.principal, DemandFilter(state=state), 50, q.get("page", ""))  # type: ignore[arg-type]
    grants = node.lists.list_grants(context.principal, GrantFilter(), 50)
    now = node.catalog.clock()
    platforms = [name for name, p in sorted(node.exchange.platforms.items())
                 if p.consumer_code == context.principal.department_code]
    deliveries = node.lists.deliveries(context.principal, 30)
    return Page("demands.html", {"demands": page.rows, "next_token": page.next_page_token, "state": q.get("state", ""),
                                 "deliveries": deliveries,
                                 "grants": [(g, g.state(now)) for g in grants.rows], "platforms": platforms,
                                 "state_names": STATE_NAMES, "states": [s.name for s in DemandState]})


def new_demand(context: Context, request: Request, form: FormData | None) -> Page:
    """The form; with a description, the node's suggestions of matching resources (SuggestResources)."""
    node = context.node
    assert node is not None
    q = request.query_params
    description, items = q.get("description", "").strip(), q.get("items", "").strip()
    suggestions = []
    if description or items:
        context.target = "catalog:suggest"
        suggestions = node.lists.suggestions(context.principal, description, _split(items))
    return Page("demand_new.html", {"description": description, "items": items, "resource_code": q.get("resource", ""),
                                    "suggestions": suggestions, "cycles": list(UpdateCycle)})


def file_demand(context: Context, request: Request, form: FormData | None) -> Page:
    node = context.node
    assert node is not None and form is not None
    frequency = _enum(UpdateCycle, str(form.get("frequency", "")), "frequency")
    request_ = DemandRequest(
        requester_code=context.principal.department_code, resource_code=str(form.get("resource_code", "")).strip(),
        description=str(form.get("description", "")).strip(), items=tuple(_split(str(form.get("items", "")))),
        purpose=str(form.get("purpose", "")).strip(), legal_basis=str(form.get("legal_basis", "")).strip(),
        frequency=frequency, contact=str(form.get("contact", "")).strip())  # type: ignore[arg-type]
    context.target = f"resource:{request_.resource_code}" if request_.resource_code else "demand:new"
    demand = node.lists.file_demand(context.principal, request_)
    context.detail = f"demand {demand.id} {demand.state.value}"
    return Page(redirect="/demands", flash=f"需求 {demand.id} 已提交，状态：{STATE_NAMES.get(demand.state.value)}")


def subscribe(context: Context, request: Request, form: FormData | None) -> Page:
    node = context.node
    assert node is not None and form is not None
    code, platform = str(form.get("resource_code", "")), str(form.get("platform", ""))
    context.target = f"resource:{code}"
    subscription, queue = node.exchange.subscribe(context.principal, code, platform)
    return Page(redirect="/demands", flash=f"已订阅 {code}：平台 {platform}，队列 {queue}")


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.replace("、", ",").replace("，", ",").split(",") if part.strip()]


def register(console: Console) -> None:
    console.page("/catalog", "CatalogService/ListResources", catalog)
    console.page("/catalog/r/{code:path}", "CatalogService/GetResource", resource)
    console.page("/demands", "ListsService/ListDemands", demands)
    console.page("/demands/new", "ListsService/SuggestResources", new_demand)
    console.page("/demands", "ListsService/FileDemand", file_demand, methods=("POST",))
    console.page("/subscribe", "ExchangeService/Subscribe", subscribe, methods=("POST",))
