"""ListsService: decode, call one use case of node/services/lists.py (off the event loop), encode."""

from __future__ import annotations

import asyncio
import datetime as dt

import grpc
from exnode.v1 import lists_pb2 as pb
from exnode.v1 import lists_pb2_grpc

from catalog import lists as domain
from catalog.disputes import Dispute, DisputeState
from catalog.errors import InvalidField
from catalog.lists import Demand, DemandRequest, DemandState, Grant, GrantKind
from catalog.model import UpdateCycle
from catalog.objections import Objection, ObjectionState
from catalog.workdays import beijing_date, start_of
from node.grpc.convert import timestamp_of
from node.ops.request_context import current, principal
from node.services.disputes import DisputesApplication
from node.services.errors import NotReady
from node.services.lists import ListsApplication, ObligationLine, StageTimeliness, export_list
from node.services.objections import ObjectionsApplication
from node.services.report import ReportApplication
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


def demand_to_proto(demand: Demand, now: dt.datetime | None = None) -> pb.Demand:
    r = demand.request
    message = pb.Demand(
        id=demand.id, requester_code=r.requester_code, resource_code=r.resource_code, description=r.description,
        items=list(r.items), purpose=r.purpose, legal_basis=r.legal_basis,
        frequency=r.frequency.value if r.frequency else "", contact=r.contact,
        state=pb.DemandState.Value(demand.state.value), reason=demand.reason, provider_code=demand.provider_code,
        resource_name=demand.resource_name, decided_by=demand.decided_by, grant_id=demand.grant_id,
        version=demand.version, compliance_by=demand.compliance_by, compliance_late=demand.compliance_late,
        answer_late=demand.answer_late, escalated_stage=demand.escalated_stage,
        overdue=now is not None and demand.overdue(now), kind=r.kind.value, daily_quota=r.daily_quota)
    for name in ("created_at", "updated_at", "review_deadline", "compliance_deadline", "compliance_at",
                 "answer_deadline", "answered_at", "escalated_at"):
        _stamp(message, name, getattr(demand, name))
    return message


def _date(text: str, field: str) -> dt.date | None:
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidField.one(field, f"{text!r} is not a date (YYYY-MM-DD)") from None


def timeliness_to_proto(stages: list[StageTimeliness]) -> pb.TimelinessResponse:
    return pb.TimelinessResponse(stages=[
        pb.StageTimeliness(stage=s.stage, on_time=s.on_time, late=s.late, open_within=s.open_within,
                           open_overdue=s.open_overdue) for s in stages])


def grant_to_proto(grant: Grant, now: dt.datetime) -> pb.Grant:
    message = pb.Grant(
        id=grant.id, consumer_code=grant.consumer_code, resource_code=grant.resource_code, items=list(grant.items),
        masking=dict(grant.masking), revoked=grant.revoked_at is not None, provider_code=grant.provider_code,
        demand_id=grant.demand_id, state=grant.state(now), revoked_reason=grant.revoked_reason,
        clear_delivery=grant.clear_delivery, kind=grant.kind.value, daily_quota=grant.daily_quota, purpose=grant.purpose,
        legal_basis=grant.legal_basis)
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


def dispute_to_proto(dispute: Dispute) -> pb.Dispute:
    message = pb.Dispute(
        id=dispute.id, demand_id=dispute.demand_id, requester_code=dispute.requester_code,
        provider_code=dispute.provider_code, resource_code=dispute.resource_code, duty_basis=dispute.duty_basis,
        state=pb.DisputeState.Value(dispute.state.value), filed_by=dispute.filed_by,
        provider_answer=dispute.provider_answer, provider_by=dispute.provider_by, provider_late=dispute.provider_late,
        decision_reason=dispute.decision_reason, conditions=dispute.conditions, decided_by=dispute.decided_by,
        grant_id=dispute.grant_id)
    for name in ("provider_deadline", "provider_at", "decided_at", "escalated_at", "created_at"):
        _stamp(message, name, getattr(dispute, name))
    return message


def _dispute_state(value: int) -> DisputeState | None:
    if value == pb.DISPUTE_STATE_UNSPECIFIED:
        return None
    try:
        return DisputeState(pb.DisputeState.Name(value))
    except ValueError:
        raise InvalidField.one("state", f"unknown dispute state {value}") from None


def objection_to_proto(o: Objection) -> pb.Objection:
    message = pb.Objection(
        id=o.id, provider_code=o.record.provider_code, resource_code=o.record.resource_code,
        record_id=o.record.record_id, item=o.item, raiser_code=o.raiser_code, raised_by=o.raised_by,
        evidence=o.evidence, attachments=list(o.attachments), state=pb.ObjectionState.Value(f"OBJECTION_{o.state.value}"),
        answer=o.answer, answered_by=o.answered_by, late=o.late, corrected_by=o.corrected_by)
    for name in ("created_at", "deadline", "answered_at", "escalated_at"):
        _stamp(message, name, getattr(o, name))
    return message


def _objection_state(value: int) -> ObjectionState | None:
    if value == pb.OBJECTION_STATE_UNSPECIFIED:
        return None
    try:
        return ObjectionState(pb.ObjectionState.Name(value).removeprefix("OBJECTION_"))
    except ValueError:
        raise InvalidField.one("state", f"unknown objection state {value}") from None


class ListsServicer(lists_pb2_grpc.ListsServiceServicer):
    def __init__(self, app: ListsApplication, disputes: DisputesApplication | None = None,
                 objections: ObjectionsApplication | None = None, report: ReportApplication | None = None) -> None:
        self.app = app
        self.report = report
        self.disputes = disputes or DisputesApplication(app)
        self.objections = objections or ObjectionsApplication(app)

    async def RaiseObjection(self, request: pb.RaiseObjectionRequest, context: grpc.aio.ServicerContext
                             ) -> pb.Objection:
        current().target = f"record:{request.resource_code}#{request.record_id}"
        objection = await asyncio.to_thread(
            self.objections.raise_objection, principal(), request.resource_code, request.record_id, request.evidence,
            tuple(request.attachments), request.item)
        current().detail = f"objection {objection.id} OPEN" + (f" on item {objection.item}" if objection.item else "")
        return objection_to_proto(objection)

    async def AnswerObjection(self, request: pb.AnswerObjectionRequest, context: grpc.aio.ServicerContext
                              ) -> pb.Objection:
        current().target = f"objection:{request.id}"
        objection = await asyncio.to_thread(self.objections.answer, principal(), request.id,
                                            corrected_record_id=request.corrected_record_id, reason=request.reason)
        current().detail = objection.state.value + (f" by record {objection.corrected_by}" if objection.corrected_by
                                                    else "") + (", answered late" if objection.late else "")
        return objection_to_proto(objection)

    async def GetObjection(self, request: pb.GetObjectionRequest, context: grpc.aio.ServicerContext
                           ) -> pb.Objection:
        current().target = f"objection:{request.id}"
        return objection_to_proto(await asyncio.to_thread(self.objections.get, principal(), request.id))

    async def ListObjections(self, request: pb.ListObjectionsRequest, context: grpc.aio.ServicerContext
                             ) -> pb.ListObjectionsResponse:
        current().target = f"objections:{request.department_code or 'node'}"
        page = await asyncio.to_thread(self.objections.list, principal(), request.department_code,
                                       request.resource_code, _objection_state(request.state), request.page_size,
                                       request.page_token)
        return pb.ListObjectionsResponse(objections=[objection_to_proto(o) for o in page.rows],
                                         next_page_token=page.next_page_token)

    async def MonthlyReport(self, request: pb.MonthlyReportRequest, context: grpc.aio.ServicerContext
                            ) -> pb.MonthlyReportResponse:
        current().target = f"report:monthly:{request.month}"
        if self.report is None:
            raise NotReady("this node does not sign reports (no signing key in this process)")
        signed = await asyncio.to_thread(self.report.monthly, principal(), request.month, request.region)
        current().detail = (f"{len(signed.report.resources)} resources, {len(signed.report.departments)} departments, "
                            f"signed with {signed.kid}")
        return pb.MonthlyReportResponse(
            files=[pb.ReportFile(name=name, content=content) for name, content in signed.files.items()],
            node_id=signed.report.node_id, month=signed.report.month, key_id=signed.kid, algorithm=signed.algorithm,
            signature=signed.signature)

    async def SendMonthlyReport(self, request: pb.MonthlyReportRequest, context: grpc.aio.ServicerContext
                                ) -> pb.SendReportResponse:
        current().target = f"report:monthly:{request.month}"
        if self.report is None:
            raise NotReady("this node does not sign reports (no signing key in this process)")
        report, queues = await asyncio.to_thread(self.report.send_upward, principal(), request.month)
        current().detail = f"sent to {', '.join(queues)}; includes {', '.join(report.includes) or 'no lower node'}"
        return pb.SendReportResponse(queues=queues, resources=len(report.resources),
                                     departments=len(report.departments), includes=list(report.includes))

    async def QualityScores(self, request: pb.QualityRequest, context: grpc.aio.ServicerContext
                            ) -> pb.QualityResponse:
        current().target = f"quality:{request.provider_code or 'node'}"
        scores = await asyncio.to_thread(self.objections.quality, principal(), request.provider_code)
        return pb.QualityResponse(scores=[pb.QualityScore(
            resource_code=s.resource_code, provider_code=s.provider_code, records=s.records, objections=s.objections,
            open=s.open, upheld=s.upheld, upheld_per_10k=s.upheld_per_10k, compliance=pb.Compliance.Value(s.compliance),
            missed_periods=s.missed_periods) for s in scores])

    def _outcome(self, outcome: tuple[Dispute, Demand]) -> pb.DisputeOutcome:
        dispute, demand = outcome
        current().target = f"dispute:{dispute.id}"
        current().detail = f"dispute {dispute.state.value}, demand {demand.id} {demand.state.value}" + (
            f", grant {dispute.grant_id}" if dispute.grant_id else "") + (
            ", provider answered late" if dispute.provider_late else "")
        return pb.DisputeOutcome(dispute=dispute_to_proto(dispute), demand=demand_to_proto(demand, self.app.clock()))

    async def FileDispute(self, request: pb.FileDisputeRequest, context: grpc.aio.ServicerContext
                          ) -> pb.DisputeOutcome:
        current().target = f"demand:{request.demand_id}"
        return self._outcome(await asyncio.to_thread(self.disputes.file, principal(), request.demand_id,
                                                     request.duty_basis))

    async def AnswerDispute(self, request: pb.AnswerDisputeRequest, context: grpc.aio.ServicerContext
                            ) -> pb.DisputeOutcome:
        current().target = f"dispute:{request.id}"
        return self._outcome(await asyncio.to_thread(self.disputes.answer, principal(), request.id, request.agree,
                                                     request.reason))

    async def DecideDispute(self, request: pb.DecideDisputeRequest, context: grpc.aio.ServicerContext
                            ) -> pb.DisputeOutcome:
        current().target = f"dispute:{request.id}"
        expires = timestamp_of(request, "expires_at")
        return self._outcome(await asyncio.to_thread(
            self.disputes.decide, principal(), request.id, request.grant, request.reason, request.conditions,
            items=tuple(request.items), expires_at=expires))

    async def GetDispute(self, request: pb.GetDisputeRequest, context: grpc.aio.ServicerContext) -> pb.Dispute:
        current().target = f"dispute:{request.id}"
        return dispute_to_proto(await asyncio.to_thread(self.disputes.get, principal(), request.id))

    async def ListDisputes(self, request: pb.ListDisputesRequest, context: grpc.aio.ServicerContext
                           ) -> pb.ListDisputesResponse:
        current().target = f"disputes:{request.department_code or 'node'}"
        page = await asyncio.to_thread(self.disputes.list, principal(), request.department_code,
                                       _dispute_state(request.state), request.page_size, request.page_token)
        return pb.ListDisputesResponse(disputes=[dispute_to_proto(d) for d in page.rows],
                                       next_page_token=page.next_page_token)

    async def ListObligations(self, request: pb.ListObligationsRequest, context: grpc.aio.ServicerContext
                              ) -> pb.ListObligationsResponse:
        current().target = f"responsibilities:{request.department_code or 'node'}"
        wanted = None
        if request.compliance:
            try:
                wanted = domain.Compliance(pb.Compliance.Name(request.compliance))
            except ValueError:  # a number the enum does not define (proto3 enums are open)
                raise InvalidField.one("compliance", f"unknown compliance {request.compliance}") from None
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
        return demand_to_proto(demand, self.app.clock())

    async def LinkDemand(self, request: pb.LinkDemandRequest, context: grpc.aio.ServicerContext) -> pb.Demand:
        current().target = f"demand:{request.id}"
        demand = await asyncio.to_thread(self.app.link_demand, principal(), request.id, request.resource_code)
        return demand_to_proto(demand, self.app.clock())

    async def DecideDemand(self, request: pb.DecideDemandRequest, context: grpc.aio.ServicerContext) -> pb.Demand:
        current().target = f"demand:{request.id}"
        expires = timestamp_of(request, "expires_at")
        masking = None if (request.default_masking or not request.masking) else dict(request.masking)
        demand = await asyncio.to_thread(
            self.app.decide, principal(), request.id, request.approve, request.reason, expires_at=expires,
            items=tuple(request.items), masking=masking, clear_delivery=request.clear_delivery)
        current().detail = f"{demand.state.value}" + (f", grant {demand.grant_id}" if demand.grant_id else "") \
            + (", answered late" if demand.answer_late else "")
        return demand_to_proto(demand, self.app.clock())

    async def WithdrawDemand(self, request: pb.WithdrawDemandRequest, context: grpc.aio.ServicerContext
                             ) -> pb.Demand:
        current().target = f"demand:{request.id}"
        demand = await asyncio.to_thread(self.app.withdraw, principal(), request.id, request.reason)
        return demand_to_proto(demand, self.app.clock())

    async def GetDemand(self, request: pb.GetDemandRequest, context: grpc.aio.ServicerContext) -> pb.Demand:
        current().target = f"demand:{request.id}"
        demand = await asyncio.to_thread(self.app.get_demand, principal(), request.id)
        return demand_to_proto(demand, self.app.clock())

    async def ListDemands(self, request: pb.ListDemandsRequest, context: grpc.aio.ServicerContext
                          ) -> pb.ListDemandsResponse:
        current().target = f"demands:{request.department_code or 'node'}"
        flt = DemandFilter(department_code=request.department_code, state=_state(request.state),
                           escalated=request.escalated)
        page = await asyncio.to_thread(self.app.list_demands, principal(), flt, request.page_size, request.page_token)
        now = self.app.clock()
        return pb.ListDemandsResponse(demands=[demand_to_proto(d, now) for d in page.rows],
                                      next_page_token=page.next_page_token)

    async def ReviewDemand(self, request: pb.ReviewDemandRequest, context: grpc.aio.ServicerContext) -> pb.Demand:
        current().target = f"demand:{request.id}"
        demand = await asyncio.to_thread(self.app.review, principal(), request.id, request.passed, request.reason)
        current().detail = f"compliance review: {demand.state.value}" + (", late" if demand.compliance_late else "")
        return demand_to_proto(demand, self.app.clock())

    async def ListDueDemands(self, request: pb.ListDueDemandsRequest, context: grpc.aio.ServicerContext
                             ) -> pb.ListDueDemandsResponse:
        day = _date(request.date, "date")
        current().target = f"demands:due:{request.date or 'tomorrow'}"
        found = await asyncio.to_thread(self.app.falling_due, principal(), day)
        now = self.app.clock()
        shown = day or beijing_date(now) + dt.timedelta(days=1)
        return pb.ListDueDemandsResponse(demands=[demand_to_proto(d, now) for d in found], date=shown.isoformat())

    async def DemandTimeliness(self, request: pb.TimelinessRequest, context: grpc.aio.ServicerContext
                               ) -> pb.TimelinessResponse:
        current().target = f"demands:timeliness:{request.department_code or 'node'}"
        since, until = _date(request.since, "since"), _date(request.until, "until")
        stages = await asyncio.to_thread(
            self.app.timeliness, principal(), start_of(since) if since else None,
            start_of(until + dt.timedelta(days=1)) if until else None, request.department_code)
        return timeliness_to_proto(stages)

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
