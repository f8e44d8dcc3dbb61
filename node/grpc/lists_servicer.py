"""ListsService: decode, call one use case of node/services/lists.py (off the event loop), encode."""

from __future__ import annotations

import asyncio
import datetime as dt

import grpc
from exnode.v1 import lists_pb2 as pb
from exnode.v1 import lists_pb2_grpc

from catalog import lists as domain
from catalog.errors import InvalidField
from catalog.lists import Demand, DemandRequest, DemandState, Grant, GrantKind
from catalog.model import UpdateCycle
from node.ops.request_context import current, principal
from node.services.lists import ListsApplication, ObligationLine, export_list
from node.storage.lists_repository import DemandFilter, GrantFilter


def _stamp(message: object, field: str, value: dt.datetime | None) -> None:
    if value is not None:
        getattr(message, field).FromDatetime(value.astimezone(dt.UTC))


def _cycle(token: str, field: str) -> UpdateCycle | None:
    if not token:
        return None
    return UpdateCycle.parse(token, field)  # type: ignore[return-value]


def obligation_to_proto(line: ObligationLine) -> pb.Obligation:
    o, s = line.obligation, line.status
    grace = o.effective_grace_days
    message = pb.Obligation(
        department_code=o.department_code, resource_code=o.resource_code, resource_name=o.resource_name,
        update_cycle=o.update_cycle.value, due_rule=o.due_rule, grace_days=-1 if grace is None else grace,
        contact=o.contact, explicit=o.explicit, compliance=pb.Compliance.Value(s.compliance.value),
        overdue_seconds=int(s.overdue_by.total_seconds()), missed_periods=s.missed_periods, deliveries=s.deliveries,
        provider_name=o.provider_name)
    _stamp(message, "last_delivery", s.last_delivery)
    _stamp(message, "next_due", s.next_due)
    return message


def demand_to_proto(demand: Demand) -> pb.Demand:
    r = demand.request
    message = pb.Demand(
        id=demand.id, requester_code=r.requester_code, resource_code=r.resource_code, description=r.description,
        items=list(r.items), purpose=r.purpose, legal_basis=r.legal_basis,
        frequency=r.frequency.value if r.frequency else "", contact=r.contact,
        state=pb.DemandState.Value(demand.state.value), reason=demand.reason, provider_code=demand.provider_code,
        resource_name=demand.resource_name, decided_by=demand.decided_by, grant_id=demand.grant_id,
        version=demand.version, kind=r.kind.value, daily_quota=r.daily_quota)
    _stamp(message, "created_at", demand.created_at)
    _stamp(message, "updated_at", demand.updated_at)
    _stamp(message, "review_deadline", demand.review_deadline)
    return message


def grant_to_proto(grant: Grant, now: dt.datetime) -> pb.Grant:
    message = pb.Grant(
        id=grant.id, consumer_code=grant.consumer_code, resource_code=grant.resource_code, items=list(grant.items),
        masking=dict(grant.masking), revoked=grant.revoked_at is not None, provider_code=grant.provider_code,
        demand_id=grant.demand_id, state=grant.state(now), revoked_reason=grant.revoked_reason,
        kind=grant.kind.value, daily_quota=grant.daily_quota, purpose=grant.purpose, legal_basis=grant.legal_basis)
    _stamp(message, "expires_at", grant.expires_at)
    _stamp(message, "created_at", grant.created_at)
    return message


def _kind(value: str) -> GrantKind:
    """A demand's kind: empty is COPY (what every client before verification grants sent)."""
    try:
        return GrantKind(value.upper()) if value else GrantKind.COPY
    except ValueError:
        raise InvalidField.one("demand.kind", f"unknown kind {value!r} (COPY or VERIFY)") from None


def _state(value: int) -> DemandState | None:
    if value == pb.DEMAND_STATE_UNSPECIFIED:
        return None
    try:
        return DemandState(pb.DemandState.Name(value))
    except ValueError:
        raise InvalidField.one("state", f"unknown demand state {value}") from None


class ListsServicer(lists_pb2_grpc.ListsServiceServicer):
    def __init__(self, app: ListsApplication) -> None:
        self.app = app

    async def ListObligations(self, request: pb.ListObligationsRequest, context: grpc.aio.ServicerContext
                              ) -> pb.ListObligationsResponse:
        current().target = f"responsibilities:{request.department_code or 'node'}"
        wanted = None
        if request.compliance:
            wanted = domain.Compliance(pb.Compliance.Name(request.compliance))
        lines = await asyncio.to_thread(self.app.obligations, principal(), request.department_code, wanted)
        return pb.ListObligationsResponse(obligations=[obligation_to_proto(line) for line in lines])

    async def AddObligation(self, request: pb.AddObligationRequest, context: grpc.aio.ServicerContext
                            ) -> pb.Obligation:
        current().target = f"resource:{request.resource_code}"
        if not request.department_code:
            raise InvalidField.one("department_code", "is required")
        if not request.resource_code:
            raise InvalidField.one("resource_code", "is required")
        obligation = await asyncio.to_thread(
            self.app.add_obligation, principal(), request.department_code, request.resource_code,
            _cycle(request.update_cycle, "update_cycle"), None if request.grace_days < 0 else request.grace_days,
            request.contact)
        lines = await asyncio.to_thread(self.app.obligations, principal(), obligation.department_code)
        line = next(x for x in lines if x.obligation.resource_code == obligation.resource_code)
        return obligation_to_proto(line)

    async def FileDemand(self, request: pb.FileDemandRequest, context: grpc.aio.ServicerContext) -> pb.Demand:
        d = request.demand
        current().target = f"resource:{d.resource_code}" if d.resource_code else "demand:new"
        demand_request = DemandRequest(
            requester_code=d.requester_code, resource_code=d.resource_code, description=d.description,
            items=tuple(d.items), purpose=d.purpose, legal_basis=d.legal_basis,
            frequency=_cycle(d.frequency, "demand.frequency"), contact=d.contact,
            kind=_kind(d.kind), daily_quota=d.daily_quota)
        demand = await asyncio.to_thread(self.app.file_demand, principal(), demand_request)
        current().target = f"demand:{demand.id}"
        current().detail = f"state {demand.state.value}" + (f", grant {demand.grant_id}" if demand.grant_id else "")
        return demand_to_proto(demand)

    async def LinkDemand(self, request: pb.LinkDemandRequest, context: grpc.aio.ServicerContext) -> pb.Demand:
        current().target = f"demand:{request.id}"
        demand = await asyncio.to_thread(self.app.link_demand, principal(), request.id, request.resource_code)
        return demand_to_proto(demand)

    async def DecideDemand(self, request: pb.DecideDemandRequest, context: grpc.aio.ServicerContext) -> pb.Demand:
        current().target = f"demand:{request.id}"
        expires = request.expires_at.ToDatetime(tzinfo=dt.UTC) if request.HasField("expires_at") else None
        masking = None if (request.default_masking or not request.masking) else dict(request.masking)
        demand = await asyncio.to_thread(
            self.app.decide, principal(), request.id, request.approve, request.reason, expires_at=expires,
            items=tuple(request.items), masking=masking)
        current().detail = f"{demand.state.value}" + (f", grant {demand.grant_id}" if demand.grant_id else "")
        return demand_to_proto(demand)

    async def WithdrawDemand(self, request: pb.WithdrawDemandRequest, context: grpc.aio.ServicerContext
                             ) -> pb.Demand:
        current().target = f"demand:{request.id}"
        return demand_to_proto(await asyncio.to_thread(self.app.withdraw, principal(), request.id, request.reason))

    async def GetDemand(self, request: pb.GetDemandRequest, context: grpc.aio.ServicerContext) -> pb.Demand:
        current().target = f"demand:{request.id}"
        return demand_to_proto(await asyncio.to_thread(self.app.get_demand, principal(), request.id))

    async def ListDemands(self, request: pb.ListDemandsRequest, context: grpc.aio.ServicerContext
                          ) -> pb.ListDemandsResponse:
        current().target = f"demands:{request.department_code or 'node'}"
        flt = DemandFilter(department_code=request.department_code, state=_state(request.state))
        page = await asyncio.to_thread(self.app.list_demands, principal(), flt, request.page_size, request.page_token)
        return pb.ListDemandsResponse(demands=[demand_to_proto(d) for d in page.rows],
                                      next_page_token=page.next_page_token)

    async def SuggestResources(self, request: pb.SuggestResourcesRequest, context: grpc.aio.ServicerContext
                               ) -> pb.SuggestResourcesResponse:
        current().target = "catalog:suggest"
        found = await asyncio.to_thread(self.app.suggestions, principal(), request.description, tuple(request.items),
                                        request.limit or 10)
        return pb.SuggestResourcesResponse(suggestions=[
            pb.Suggestion(resource_code=s.resource.code, name=s.resource.latest.metadata.name,
                          provider_name=s.resource.latest.metadata.provider_name,
                          share_type=s.resource.latest.metadata.share_type.value, score=s.score,
                          matched_items=list(s.matched_items))
            for s in found])

    async def ListGrants(self, request: pb.ListGrantsRequest, context: grpc.aio.ServicerContext
                         ) -> pb.ListGrantsResponse:
        current().target = f"grants:{request.department_code or 'node'}"
        flt = GrantFilter(department_code=request.department_code, resource_code=request.resource_code)
        page = await asyncio.to_thread(self.app.list_grants, principal(), flt, request.page_size, request.page_token)
        now = self.app.clock()
        return pb.ListGrantsResponse(grants=[grant_to_proto(g, now) for g in page.rows],
                                     next_page_token=page.next_page_token)

    async def RevokeGrant(self, request: pb.RevokeGrantRequest, context: grpc.aio.ServicerContext) -> pb.Grant:
        current().target = f"grant:{request.id}"
        grant = await asyncio.to_thread(self.app.revoke_grant, principal(), request.id, request.reason)
        return grant_to_proto(grant, self.app.clock())

    async def ExportList(self, request: pb.ExportListRequest, context: grpc.aio.ServicerContext
                         ) -> pb.ExportListResponse:
        current().target = f"{request.list}:{request.department_code or 'node'}"
        content, name = await asyncio.to_thread(export_list, self.app, principal(), request.list,
                                                request.format or "csv", request.department_code)
        return pb.ExportListResponse(content=content, filename=name)
