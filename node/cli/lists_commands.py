"""``exnode lists …``: the responsibility list, demands and grants against a running node."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from exnode.v1 import lists_pb2 as pb
from exnode.v1 import lists_pb2_grpc

from node.cli.common import UsageError, add_client, call_metadata, channel, print_json

STATES = [s for s in pb.DemandState.keys() if s != "DEMAND_STATE_UNSPECIFIED"]
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
            decide.add_argument("--mask", action="append", default=[], metavar="ITEM=RULE",
                                help="masking rule, e.g. 公民身份号码=keep:6,4 (repeatable; default rules otherwise)")
        decide.set_defaults(handler=run_decide, approve=name == "approve")

    withdraw = actions.add_parser("withdraw", help="withdraw your department's demand")
    add_client(withdraw)
    withdraw.add_argument("id")
    withdraw.add_argument("--reason", default="")
    withdraw.set_defaults(handler=run_withdraw)

    suggest = commands.add_parser("suggest", help="published resources matching a description")
    add_client(suggest)
    suggest.add_argument("description")
    suggest.add_argument("--items", default="")
    suggest.add_argument("--limit", type=int, default=10)
    suggest.set_defaults(handler=run_suggest)

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
    parser.add_argument("--export", choices=["csv", "xml"], default=None, help="write the list as a file instead")
    parser.add_argument("--out", type=Path, default=None)


def _stub(args: argparse.Namespace) -> lists_pb2_grpc.ListsServiceStub:
    return lists_pb2_grpc.ListsServiceStub(channel(args))


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
            "kind": d.kind or "COPY", "daily_quota": d.daily_quota}


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
    for o in lines:
        late = f" {o.overdue_seconds / 86400:.0f}d late" if o.overdue_seconds else ""
        print(f"{o.department_code} {o.resource_code:<22} {pb.Compliance.Name(o.compliance):<15}{late:<10} "
              f"{o.resource_name}  [{o.due_rule}]")
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
        print(f"{d.id} {pb.DemandState.Name(d.state)} {d.resource_code or '(unmatched)'} {d.resource_name}"
              + (f" — {d.reason}" if d.reason else "") + (f" [grant {d.grant_id}]" if d.grant_id else ""))
    return 0


def run_demands(args: argparse.Namespace) -> int:
    if args.export:
        return _export(args, "demands", args.export)
    request = pb.ListDemandsRequest(department_code=args.dept, page_size=500,
                                    state=pb.DemandState.Value(args.state) if args.state else 0)
    found: list[pb.Demand] = []
    stub = _stub(args)
    while True:
        page = stub.ListDemands(request, metadata=call_metadata(args))
        found.extend(page.demands)
        if not page.next_page_token:
            break
        request.page_token = page.next_page_token
    if args.json:
        print_json([demand_dict(d) for d in found])
        return 0
    for d in found:
        print(f"{d.id} {pb.DemandState.Name(d.state):<13} {d.requester_code} → {d.provider_code or '?':<18} "
              f"{d.resource_code or '(unmatched)':<22} {d.resource_name or d.description[:30]}")
    print(f"{len(found)} demands", file=sys.stderr)
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
    for s in response.suggestions:
        items = f"  items: {'、'.join(s.matched_items)}" if s.matched_items else ""
        print(f"{s.score:6.3f} {s.resource_code:<22} {s.name}  [{s.provider_name}, {s.share_type}]{items}")
    return 0


def run_grants(args: argparse.Namespace) -> int:
    request = pb.ListGrantsRequest(department_code=args.dept, resource_code=args.resource, page_size=500)
    found: list[pb.Grant] = []
    stub = _stub(args)
    while True:
        page = stub.ListGrants(request, metadata=call_metadata(args))
        found.extend(page.grants)
        if not page.next_page_token:
            break
        request.page_token = page.next_page_token
    if args.json:
        print_json([grant_dict(g) for g in found])
        return 0
    for g in found:
        kind = f" {g.kind} {g.daily_quota}/day" if g.kind == "VERIFY" else ""
        print(f"{g.id} {g.state:<8} {g.consumer_code} ← {g.provider_code} {g.resource_code} until "
              f"{_time(g.expires_at)}{kind} items: {'、'.join(g.items)}")
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    g = _stub(args).RevokeGrant(pb.RevokeGrantRequest(id=args.id, reason=args.reason), metadata=call_metadata(args))
    print_json(grant_dict(g)) if args.json else print(f"{g.id} {g.state}: {g.revoked_reason}")
    return 0
