"""``exnode lists …``: the responsibility list, demands and grants against a running node."""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import sys
from pathlib import Path
from typing import Any

from exnode.v1 import lists_pb2 as pb
from exnode.v1 import lists_pb2_grpc

from node.cli.common import UsageError, add_client, call_metadata, channel, print_json
from node.cli.output import print_table

BEIJING = dt.timezone(dt.timedelta(hours=8))
STATES = [s for s in pb.DemandState.keys() if s != "DEMAND_STATE_UNSPECIFIED"]
DISPUTE_STATES = [s for s in pb.DisputeState.keys() if s != "DISPUTE_STATE_UNSPECIFIED"]
OBJECTION_STATES = [s.removeprefix("OBJECTION_") for s in pb.ObjectionState.keys()
                    if s != "OBJECTION_STATE_UNSPECIFIED"]
COMPLIANCE = [c for c in pb.Compliance.keys() if c != "COMPLIANCE_UNSPECIFIED"]


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("lists", help="responsibility list (责任清单), demands (需求清单) and grants")
    commands = parser.add_subparsers(dest="lists_command", required=True, metavar="LIST")

    resp = commands.add_parser("responsibilities", help="the responsibility list with compliance")
    add_client(resp)
    resp.add_argument("--dept", default="", help="one department (统一社会信用代码); default: the whole node")
    resp.add_argument("--status", choices=COMPLIANCE, default=None, help="only lines in this compliance state")
    resp.add_argument("--export", choices=["csv", "xml"], default=None, help="write the list as a file instead")
    resp.add_argument("--out", type=Path, default=None, help="file for --export (default: the node's file name)")
    resp.set_defaults(handler=run_responsibilities)

    add = commands.add_parser("add-obligation", help="make a department responsible for a resource (explicit line)")
    add_client(add)
    add.add_argument("--dept", required=True)
    add.add_argument("--resource", required=True)
    add.add_argument("--cycle", default="", help="update cycle (default: the resource's)")
    add.add_argument("--grace-days", type=int, default=-1, help="days after each period to deliver (default: cycle's)")
    add.add_argument("--contact", default="")
    add.set_defaults(handler=run_add_obligation)

    demands = commands.add_parser("demands", help="the demand list; or file, link, approve, reject, withdraw")
    actions = demands.add_subparsers(dest="demand_action", metavar="ACTION")
    listing = actions.add_parser("list", help="demands (default action)")
    _demand_list_args(listing)
    _demand_list_args(demands)
    demands.set_defaults(handler=run_demands)

    file = actions.add_parser("file", help="file a demand for a resource code, or describe what you need")
    add_client(file)
    file.add_argument("--resource", default="", help="resource code (omit and use --description to be matched)")
    file.add_argument("--description", default="")
    file.add_argument("--items", default="", help="comma-separated item names (default: all)")
    file.add_argument("--purpose", required=True, help="应用场景")
    file.add_argument("--basis", required=True, help="使用依据 (legal basis)")
    file.add_argument("--frequency", default="", help="update cycle wanted, e.g. MONTHLY")
    file.add_argument("--contact", required=True)
    file.add_argument("--kind", default="COPY", choices=("COPY", "VERIFY"),
                      help="COPY (default): records relayed, pulled, queried; VERIFY: 核验 only (--items: what may be "
                           "asserted)")
    file.add_argument("--daily-quota", type=int, default=0, help="VERIFY: verifications a day (default: the node's)")
    file.set_defaults(handler=run_file)

    show = actions.add_parser("show", help="one demand")
    add_client(show)
    show.add_argument("id")
    show.set_defaults(handler=run_show)

    link = actions.add_parser("link", help="name the resource of a description-only demand")
    add_client(link)
    link.add_argument("id")
    link.add_argument("resource")
    link.set_defaults(handler=run_link)

    for name, helptext in (("approve", "approve (reviewer of the providing department)"),
                           ("reject", "reject with a reason (reviewer of the providing department)")):
        decide = actions.add_parser(name, help=helptext)
        add_client(decide)
        decide.add_argument("id")
        decide.add_argument("--reason", default="", required=name == "reject")
        if name == "approve":
            decide.add_argument("--items", default="", help="comma-separated subset of the demanded items")
            decide.add_argument("--expires", default="", help="grant expiry, ISO date (default: one year)")
            decide.add_argument("--clear-delivery", action="store_true",
                                help="the consumer may get records in clear if it registers no encryption key")
            decide.add_argument("--mask", action="append", default=[], metavar="ITEM=RULE",
                                help="masking rule, e.g. 公民身份号码=keep:6,4 (repeatable; default rules otherwise)")
        decide.set_defaults(handler=run_decide, approve=name == "approve")

    review = actions.add_parser("review", help="合规审核: pass or fail a demand (coordinator of the node's department)")
    add_client(review)
    review.add_argument("id")
    verdict = review.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--pass", dest="passed", action="store_true", help="compliant: grant or forward it")
    verdict.add_argument("--fail", dest="failed", action="store_true", help="not compliant (give --reason)")
    review.add_argument("--reason", default="")
    review.set_defaults(handler=run_review)

    withdraw = actions.add_parser("withdraw", help="withdraw your department's demand")
    add_client(withdraw)
    withdraw.add_argument("id")
    withdraw.add_argument("--reason", default="")
    withdraw.set_defaults(handler=run_withdraw)

    due = commands.add_parser("due", help="demands whose open stage falls due on a day (default: tomorrow)")
    add_client(due)
    due.add_argument("--date", default="", help="YYYY-MM-DD, Beijing time (default: tomorrow)")
    due.set_defaults(handler=run_due)

    timeliness = commands.add_parser("timeliness", help="how the demand stages kept their working-day deadlines")
    add_client(timeliness)
    timeliness.add_argument("--dept", default="", help="demands this department filed or provides")
    timeliness.add_argument("--since", default="", help="demands filed on or after this date (YYYY-MM-DD)")
    timeliness.add_argument("--until", default="", help="...and on or before this date")
    timeliness.set_defaults(handler=run_timeliness)

    suggest = commands.add_parser("suggest", help="published resources matching a description")
    add_client(suggest)
    suggest.add_argument("description")
    suggest.add_argument("--items", default="")
    suggest.add_argument("--limit", type=int, default=10)
    suggest.set_defaults(handler=run_suggest)

    disputes = commands.add_parser("disputes", help="争议协调: contest a refusal; answer; decide (coordinator)")
    dispute_actions = disputes.add_subparsers(dest="dispute_action", metavar="ACTION")
    add_client(disputes)
    disputes.add_argument("--dept", default="", help="disputes this department filed or is asked to answer")
    disputes.add_argument("--state", choices=DISPUTE_STATES, default=None)
    disputes.set_defaults(handler=run_disputes)
    contest = dispute_actions.add_parser("file", help="contest the provider's refusal of your demand")
    add_client(contest)
    contest.add_argument("demand")
    contest.add_argument("--basis", required=True, help="履职依据: the duty the data is needed for")
    contest.set_defaults(handler=run_dispute_file)
    answer = dispute_actions.add_parser("answer", help="the provider agrees or maintains its refusal (reviewer)")
    add_client(answer)
    answer.add_argument("id")
    position = answer.add_mutually_exclusive_group(required=True)
    position.add_argument("--agree", action="store_true", help="grant the demand after all")
    position.add_argument("--maintain", action="store_true", help="keep the refusal (give --reason)")
    answer.add_argument("--reason", default="")
    answer.set_defaults(handler=run_dispute_answer)
    settle = dispute_actions.add_parser("decide", help="the coordinator grants (with conditions) or refuses finally")
    add_client(settle)
    settle.add_argument("id")
    outcome = settle.add_mutually_exclusive_group(required=True)
    outcome.add_argument("--grant", action="store_true")
    outcome.add_argument("--refuse", action="store_true", help="final refusal (give --reason)")
    settle.add_argument("--reason", default="")
    settle.add_argument("--conditions", default="", help="grant: the conditions of use")
    settle.add_argument("--items", default="", help="grant: comma-separated subset of the demanded items")
    settle.set_defaults(handler=run_dispute_decide)
    show_dispute = dispute_actions.add_parser("show", help="one dispute")
    add_client(show_dispute)
    show_dispute.add_argument("id")
    show_dispute.set_defaults(handler=run_dispute_show)

    objections = commands.add_parser("objections", help="校核纠错: object to a delivered record; the provider checks it")
    objection_actions = objections.add_subparsers(dest="objection_action", metavar="ACTION")
    add_client(objections)
    objections.add_argument("--dept", default="", help="objections this department raised or must answer")
    objections.add_argument("--resource", default="")
    objections.add_argument("--state", choices=OBJECTION_STATES, default=None)
    objections.set_defaults(handler=run_objections)
    raising = objection_actions.add_parser("raise", help="object to a record your department received")
    add_client(raising)
    raising.add_argument("--resource", required=True)
    raising.add_argument("--record", required=True, help="the record id")
    raising.add_argument("--item", default="", help="the item objected to (default: the whole record)")
    raising.add_argument("--evidence", required=True, help="why the record is wrong (说明依据)")
    raising.add_argument("--attach", action="append", default=[], type=Path, metavar="FILE",
                         help="an evidence file: its SHA-256 is sent, the file stays here (repeatable)")
    raising.set_defaults(handler=run_objection_raise)
    confirm = objection_actions.add_parser("confirm", help="the record is correct (provider's reviewer, with reasons)")
    add_client(confirm)
    confirm.add_argument("id")
    confirm.add_argument("--reason", required=True)
    confirm.set_defaults(handler=run_objection_answer, corrected="")
    correct = objection_actions.add_parser("correct", help="name the corrected record sent through ingest")
    add_client(correct)
    correct.add_argument("id")
    correct.add_argument("--record", required=True, dest="corrected", help="the id of the corrected record")
    correct.add_argument("--reason", default="")
    correct.set_defaults(handler=run_objection_answer)
    show_objection = objection_actions.add_parser("show", help="one objection")
    add_client(show_objection)
    show_objection.add_argument("id")
    show_objection.set_defaults(handler=run_objection_show)

    quality = commands.add_parser("quality", help="数据质量: objections upheld per 10,000 records and timeliness")
    add_client(quality)
    quality.add_argument("--provider", default="", help="one provider department")
    quality.set_defaults(handler=run_quality)

    grants = commands.add_parser("grants", help="grants; or revoke one")
    grant_actions = grants.add_subparsers(dest="grant_action", metavar="ACTION")
    add_client(grants)
    grants.add_argument("--dept", default="")
    grants.add_argument("--resource", default="")
    grants.set_defaults(handler=run_grants)
    revoke = grant_actions.add_parser("revoke", help="revoke a grant (reviewer of the providing department)")
    add_client(revoke)
    revoke.add_argument("id")
    revoke.add_argument("--reason", required=True)
    revoke.set_defaults(handler=run_revoke)


def _demand_list_args(parser: argparse.ArgumentParser) -> None:
    add_client(parser)
    parser.add_argument("--dept", default="", help="demands this department filed or is asked for")
    parser.add_argument("--state", choices=STATES, default=None)
    parser.add_argument("--escalated", action="store_true", help="only demands escalated to the coordinator")
    parser.add_argument("--export", choices=["csv", "xml"], default=None, help="write the list as a file instead")
    parser.add_argument("--out", type=Path, default=None)


def _stub(args: argparse.Namespace) -> lists_pb2_grpc.ListsServiceStub:
    return lists_pb2_grpc.ListsServiceStub(channel(args))


def _all_pages(call: Any, request: Any, field: str, args: argparse.Namespace) -> list[Any]:
    """Every row of a paged list RPC (``call``), following next_page_token."""
    found: list[Any] = []
    while True:
        page = call(request, metadata=call_metadata(args))
        found.extend(getattr(page, field))
        if not page.next_page_token:
            return found
        request.page_token = page.next_page_token


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.replace("，", ",").split(",") if part.strip()]


def _time(stamp: Any) -> str | None:
    return stamp.ToDatetime(tzinfo=dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=8))).isoformat() \
        if stamp.seconds else None


def _export(args: argparse.Namespace, kind: str, fmt: str) -> int:
    response = _stub(args).ExportList(pb.ExportListRequest(list=kind, format=fmt, department_code=args.dept),
                                      metadata=call_metadata(args))
    path = args.out or Path(response.filename)
    path.write_bytes(response.content)
    print(f"wrote {path} ({len(response.content)} bytes)")
    return 0


def obligation_dict(o: pb.Obligation) -> dict[str, Any]:
    return {"department_code": o.department_code, "provider_name": o.provider_name, "resource_code": o.resource_code,
            "resource_name": o.resource_name, "update_cycle": o.update_cycle, "due_rule": o.due_rule,
            "contact": o.contact, "explicit": o.explicit, "compliance": pb.Compliance.Name(o.compliance),
            "last_delivery": _time(o.last_delivery), "next_due": _time(o.next_due),
            "overdue_days": round(o.overdue_seconds / 86400, 1), "missed_periods": o.missed_periods}


def demand_dict(d: pb.Demand) -> dict[str, Any]:
    return {"id": d.id, "state": pb.DemandState.Name(d.state), "requester_code": d.requester_code,
            "resource_code": d.resource_code, "resource_name": d.resource_name, "provider_code": d.provider_code,
            "description": d.description, "items": list(d.items), "purpose": d.purpose, "legal_basis": d.legal_basis,
            "frequency": d.frequency, "contact": d.contact, "reason": d.reason, "decided_by": d.decided_by,
            "grant_id": d.grant_id, "created_at": _time(d.created_at), "review_deadline": _time(d.review_deadline),
            "compliance_deadline": _time(d.compliance_deadline), "compliance_at": _time(d.compliance_at),
            "compliance_by": d.compliance_by, "compliance_late": d.compliance_late,
            "answer_deadline": _time(d.answer_deadline), "answered_at": _time(d.answered_at),
            "answer_late": d.answer_late, "escalated_at": _time(d.escalated_at), "escalated_stage": d.escalated_stage,
            "overdue": d.overdue, "kind": d.kind or "COPY", "daily_quota": d.daily_quota}


def _deadline(d: pb.Demand) -> str:
    """The stage's deadline as departments read it: the last day allowed (the deadline is midnight after it)."""
    if not d.review_deadline.seconds or pb.DemandState.Name(d.state) not in ("COMPLIANCE_REVIEW", "UNDER_REVIEW"):
        return ""
    last = d.review_deadline.ToDatetime(tzinfo=dt.UTC).astimezone(BEIJING) - dt.timedelta(seconds=1)
    return f" due {last:%Y-%m-%d}" + (" OVERDUE" if d.overdue else "") + (" escalated" if d.escalated_at.seconds else "")


def grant_dict(g: pb.Grant) -> dict[str, Any]:
    return {"id": g.id, "state": g.state, "consumer_code": g.consumer_code, "provider_code": g.provider_code,
            "resource_code": g.resource_code, "items": list(g.items), "masking": dict(g.masking),
            "expires_at": _time(g.expires_at), "demand_id": g.demand_id, "revoked_reason": g.revoked_reason,
            "kind": g.kind or "COPY", "daily_quota": g.daily_quota}


def run_responsibilities(args: argparse.Namespace) -> int:
    if args.export:
        return _export(args, "responsibilities", args.export)
    request = pb.ListObligationsRequest(department_code=args.dept,
                                        compliance=pb.Compliance.Value(args.status) if args.status else 0)
    lines = _stub(args).ListObligations(request, metadata=call_metadata(args)).obligations
    if args.json:
        print_json([obligation_dict(o) for o in lines])
        return 0
    print_table(("部门 department", "资源 resource", "状态 compliance", "逾期 late", "名称 name", "规则 due rule"),
                [(o.department_code, o.resource_code, pb.Compliance.Name(o.compliance),
                  f"{o.overdue_seconds / 86400:.0f}d" if o.overdue_seconds else "", o.resource_name, o.due_rule)
                 for o in lines])
    print(f"{len(lines)} obligations", file=sys.stderr)
    return 0


def run_add_obligation(args: argparse.Namespace) -> int:
    o = _stub(args).AddObligation(pb.AddObligationRequest(
        department_code=args.dept, resource_code=args.resource, update_cycle=args.cycle, grace_days=args.grace_days,
        contact=args.contact), metadata=call_metadata(args))
    print_json(obligation_dict(o)) if args.json else print(f"{o.department_code} {o.resource_code}: {o.due_rule}")
    return 0


def _print_demand(args: argparse.Namespace, d: pb.Demand) -> int:
    if args.json:
        print_json(demand_dict(d))
    else:
        late = " (answered late)" if d.answer_late else " (reviewed late)" if d.compliance_late else ""
        print(f"{d.id} {pb.DemandState.Name(d.state)}{_deadline(d)} {d.resource_code or '(unmatched)'} "
              f"{d.resource_name}" + (f" — {d.reason}" if d.reason else "") + late
              + (f" [grant {d.grant_id}]" if d.grant_id else ""))
    return 0


def run_demands(args: argparse.Namespace) -> int:
    if args.export:
        return _export(args, "demands", args.export)
    request = pb.ListDemandsRequest(department_code=args.dept, page_size=500, escalated=args.escalated,
                                    state=pb.DemandState.Value(args.state) if args.state else 0)
    found = _all_pages(_stub(args).ListDemands, request, "demands", args)
    if args.json:
        print_json([demand_dict(d) for d in found])
        return 0
    print_table(("需求 demand", "状态 state", "申请方 requester", "提供方 provider", "资源 resource", "名称 name", "期限 due"),
                [(d.id, pb.DemandState.Name(d.state), d.requester_code, d.provider_code or "?",
                  d.resource_code or "(unmatched)", d.resource_name or d.description, _deadline(d).strip()) for d in found])
    print(f"{len(found)} demand{'' if len(found) == 1 else 's'}", file=sys.stderr)
    return 0


def run_file(args: argparse.Namespace) -> int:
    if not args.resource and not args.description:
        raise UsageError("give --resource CODE, or --description TEXT to be matched")
    demand = pb.Demand(resource_code=args.resource, description=args.description, items=_split(args.items),
                       purpose=args.purpose, legal_basis=args.basis, frequency=args.frequency, contact=args.contact,
                       kind=args.kind, daily_quota=args.daily_quota)
    return _print_demand(args, _stub(args).FileDemand(pb.FileDemandRequest(demand=demand),
                                                      metadata=call_metadata(args)))


def run_show(args: argparse.Namespace) -> int:
    return _print_demand(args, _stub(args).GetDemand(pb.GetDemandRequest(id=args.id), metadata=call_metadata(args)))


def run_link(args: argparse.Namespace) -> int:
    return _print_demand(args, _stub(args).LinkDemand(pb.LinkDemandRequest(id=args.id, resource_code=args.resource),
                                                      metadata=call_metadata(args)))


def run_decide(args: argparse.Namespace) -> int:
    request = pb.DecideDemandRequest(id=args.id, approve=args.approve, reason=args.reason)
    if args.approve:
        request.clear_delivery = args.clear_delivery
        request.items.extend(_split(args.items))
        if args.expires:
            try:
                when = dt.datetime.fromisoformat(args.expires)
            except ValueError:
                raise UsageError(f"--expires {args.expires!r} is not an ISO date") from None
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.timezone(dt.timedelta(hours=8)))
            request.expires_at.FromDatetime(when.astimezone(dt.UTC))
        for rule in args.mask:
            item, sep, value = rule.partition("=")
            if not sep:
                raise UsageError(f"--mask {rule!r}: use ITEM=RULE, e.g. 公民身份号码=keep:6,4")
            request.masking[item.strip()] = value.strip()
        request.default_masking = not args.mask
    return _print_demand(args, _stub(args).DecideDemand(request, metadata=call_metadata(args)))


def run_review(args: argparse.Namespace) -> int:
    if args.failed and not args.reason.strip():
        raise UsageError("--fail needs --reason (a failed compliance review gives its reason)")
    request = pb.ReviewDemandRequest(id=args.id, passed=args.passed, reason=args.reason)
    return _print_demand(args, _stub(args).ReviewDemand(request, metadata=call_metadata(args)))


def run_due(args: argparse.Namespace) -> int:
    response = _stub(args).ListDueDemands(pb.ListDueDemandsRequest(date=args.date), metadata=call_metadata(args))
    if args.json:
        print_json({"date": response.date, "demands": [demand_dict(d) for d in response.demands]})
        return 0
    for d in response.demands:
        print(f"{d.id} {pb.DemandState.Name(d.state):<17} {d.requester_code} → {d.provider_code:<18} "
              f"{d.resource_code:<22} {d.resource_name}{_deadline(d)}")
    print(f"{len(response.demands)} demand{'' if len(response.demands) == 1 else 's'} "
          f"fall{'s' if len(response.demands) == 1 else ''} due on {response.date}", file=sys.stderr)
    return 0


def run_timeliness(args: argparse.Namespace) -> int:
    response = _stub(args).DemandTimeliness(pb.TimelinessRequest(department_code=args.dept, since=args.since,
                                                                 until=args.until), metadata=call_metadata(args))
    rows = [{"stage": s.stage, "on_time": s.on_time, "late": s.late, "open_within": s.open_within,
             "open_overdue": s.open_overdue} for s in response.stages]
    if args.json:
        print_json(rows)
        return 0
    for row in rows:
        print(f"{row['stage']:<17} on time {row['on_time']:>5}  late {row['late']:>5}  open {row['open_within']:>5}  "
              f"open overdue {row['open_overdue']:>5}")
    return 0


def run_withdraw(args: argparse.Namespace) -> int:
    return _print_demand(args, _stub(args).WithdrawDemand(pb.WithdrawDemandRequest(id=args.id, reason=args.reason),
                                                          metadata=call_metadata(args)))


def run_suggest(args: argparse.Namespace) -> int:
    response = _stub(args).SuggestResources(pb.SuggestResourcesRequest(
        description=args.description, items=_split(args.items), limit=args.limit), metadata=call_metadata(args))
    if args.json:
        print_json([{"resource_code": s.resource_code, "name": s.name, "provider_name": s.provider_name,
                     "share_type": s.share_type, "score": s.score, "matched_items": list(s.matched_items)}
                    for s in response.suggestions])
        return 0
    print_table(("得分 score", "资源 resource", "名称 name", "提供方 provider", "共享 share", "匹配信息项 items"),
                [(f"{s.score:.3f}", s.resource_code, s.name, s.provider_name, s.share_type, "、".join(s.matched_items))
                 for s in response.suggestions], align=(">",))
    return 0


def run_grants(args: argparse.Namespace) -> int:
    request = pb.ListGrantsRequest(department_code=args.dept, resource_code=args.resource, page_size=500)
    found = _all_pages(_stub(args).ListGrants, request, "grants", args)
    if args.json:
        print_json([grant_dict(g) for g in found])
        return 0
    print_table(("授权 grant", "状态 state", "种类 kind", "使用方 consumer", "提供方 provider", "资源 resource", "到期 expires",
                 "信息项 items"),
                [(g.id, g.state, f"{g.kind} {g.daily_quota}/day" if g.kind == "VERIFY" else (g.kind or "COPY"),
                  g.consumer_code, g.provider_code, g.resource_code, _time(g.expires_at), "、".join(g.items)) for g in found])
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    g = _stub(args).RevokeGrant(pb.RevokeGrantRequest(id=args.id, reason=args.reason), metadata=call_metadata(args))
    print_json(grant_dict(g)) if args.json else print(f"{g.id} {g.state}: {g.revoked_reason}")
    return 0


def dispute_dict(d: pb.Dispute) -> dict[str, Any]:
    return {"id": d.id, "state": pb.DisputeState.Name(d.state), "demand_id": d.demand_id,
            "requester_code": d.requester_code, "provider_code": d.provider_code, "resource_code": d.resource_code,
            "duty_basis": d.duty_basis, "provider_deadline": _time(d.provider_deadline),
            "provider_answer": d.provider_answer, "provider_by": d.provider_by, "provider_at": _time(d.provider_at),
            "provider_late": d.provider_late, "escalated_at": _time(d.escalated_at),
            "decision_reason": d.decision_reason, "conditions": d.conditions, "decided_by": d.decided_by,
            "decided_at": _time(d.decided_at), "grant_id": d.grant_id, "created_at": _time(d.created_at)}


def _print_dispute(args: argparse.Namespace, d: pb.Dispute, demand: pb.Demand | None = None) -> int:
    if args.json:
        out = dispute_dict(d)
        if demand is not None:
            out["demand"] = demand_dict(demand)
        print_json(out)
        return 0
    opinion = d.decision_reason or d.provider_answer
    print(f"{d.id} {pb.DisputeState.Name(d.state)} demand {d.demand_id} {d.resource_code}"
          + (f" — {opinion}" if opinion else "") + (f" [conditions: {d.conditions}]" if d.conditions else "")
          + (f" [grant {d.grant_id}]" if d.grant_id else ""))
    return 0


def run_disputes(args: argparse.Namespace) -> int:
    request = pb.ListDisputesRequest(department_code=args.dept, page_size=500,
                                     state=pb.DisputeState.Value(args.state) if args.state else 0)
    found = _all_pages(_stub(args).ListDisputes, request, "disputes", args)
    if args.json:
        print_json([dispute_dict(d) for d in found])
        return 0
    for d in found:
        print(f"{d.id} {pb.DisputeState.Name(d.state):<20} {d.requester_code} → {d.provider_code} demand {d.demand_id}")
    print(f"{len(found)} disputes", file=sys.stderr)
    return 0


def run_dispute_file(args: argparse.Namespace) -> int:
    outcome = _stub(args).FileDispute(pb.FileDisputeRequest(demand_id=args.demand, duty_basis=args.basis),
                                      metadata=call_metadata(args))
    return _print_dispute(args, outcome.dispute, outcome.demand)


def run_dispute_answer(args: argparse.Namespace) -> int:
    if args.maintain and not args.reason.strip():
        raise UsageError("--maintain needs --reason (a refusal gives its reasons)")
    outcome = _stub(args).AnswerDispute(pb.AnswerDisputeRequest(id=args.id, agree=args.agree, reason=args.reason),
                                        metadata=call_metadata(args))
    return _print_dispute(args, outcome.dispute, outcome.demand)


def run_dispute_decide(args: argparse.Namespace) -> int:
    if args.refuse and not args.reason.strip():
        raise UsageError("--refuse needs --reason (a final refusal gives its reasons)")
    request = pb.DecideDisputeRequest(id=args.id, grant=args.grant, reason=args.reason, conditions=args.conditions,
                                      items=_split(args.items))
    outcome = _stub(args).DecideDispute(request, metadata=call_metadata(args))
    return _print_dispute(args, outcome.dispute, outcome.demand)


def run_dispute_show(args: argparse.Namespace) -> int:
    return _print_dispute(args, _stub(args).GetDispute(pb.GetDisputeRequest(id=args.id), metadata=call_metadata(args)))


def objection_dict(o: pb.Objection) -> dict[str, Any]:
    return {"id": o.id, "state": pb.ObjectionState.Name(o.state).removeprefix("OBJECTION_"),
            "provider_code": o.provider_code, "resource_code": o.resource_code, "record_id": o.record_id,
            "item": o.item, "raiser_code": o.raiser_code, "evidence": o.evidence, "attachments": list(o.attachments),
            "created_at": _time(o.created_at), "deadline": _time(o.deadline), "answer": o.answer,
            "answered_by": o.answered_by, "answered_at": _time(o.answered_at), "late": o.late,
            "corrected_by": o.corrected_by, "escalated_at": _time(o.escalated_at)}


def _print_objection(args: argparse.Namespace, o: pb.Objection) -> int:
    if args.json:
        print_json(objection_dict(o))
        return 0
    state = pb.ObjectionState.Name(o.state).removeprefix("OBJECTION_")
    print(f"{o.id} {state} {o.resource_code}#{o.record_id}" + (f" item {o.item}" if o.item else "")
          + (f" — {o.answer}" if o.answer else "") + (f" [corrected by {o.corrected_by}]" if o.corrected_by else "")
          + (" (answered late)" if o.late else ""))
    return 0


def run_objections(args: argparse.Namespace) -> int:
    request = pb.ListObjectionsRequest(department_code=args.dept, resource_code=args.resource, page_size=500,
                                       state=pb.ObjectionState.Value(f"OBJECTION_{args.state}") if args.state else 0)
    found = _all_pages(_stub(args).ListObjections, request, "objections", args)
    if args.json:
        print_json([objection_dict(o) for o in found])
        return 0
    for o in found:
        _print_objection(args, o)
    print(f"{len(found)} objections", file=sys.stderr)
    return 0


def run_objection_raise(args: argparse.Namespace) -> int:
    digests = []
    for path in args.attach:
        try:
            digests.append(hashlib.sha256(path.read_bytes()).hexdigest())
        except OSError as error:
            raise UsageError(f"--attach {path}: {error.strerror}") from None
    request = pb.RaiseObjectionRequest(resource_code=args.resource, record_id=args.record, item=args.item,
                                       evidence=args.evidence, attachments=digests)
    return _print_objection(args, _stub(args).RaiseObjection(request, metadata=call_metadata(args)))


def run_objection_answer(args: argparse.Namespace) -> int:
    request = pb.AnswerObjectionRequest(id=args.id, corrected_record_id=args.corrected, reason=args.reason)
    return _print_objection(args, _stub(args).AnswerObjection(request, metadata=call_metadata(args)))


def run_objection_show(args: argparse.Namespace) -> int:
    return _print_objection(args, _stub(args).GetObjection(pb.GetObjectionRequest(id=args.id),
                                                           metadata=call_metadata(args)))


def run_quality(args: argparse.Namespace) -> int:
    scores = _stub(args).QualityScores(pb.QualityRequest(provider_code=args.provider),
                                       metadata=call_metadata(args)).scores
    rows = [{"resource_code": s.resource_code, "provider_code": s.provider_code, "records": s.records,
             "objections": s.objections, "open": s.open, "upheld": s.upheld, "upheld_per_10k": s.upheld_per_10k,
             "compliance": pb.Compliance.Name(s.compliance), "missed_periods": s.missed_periods} for s in scores]
    if args.json:
        print_json(rows)
        return 0
    for r in rows:
        print(f"{r['resource_code']:<22} records {r['records']:>8}  objections {r['objections']:>4} (open {r['open']}, "
              f"upheld {r['upheld']}, {r['upheld_per_10k']:.2f}/10k)  {r['compliance']} missed {r['missed_periods']}")
    return 0
