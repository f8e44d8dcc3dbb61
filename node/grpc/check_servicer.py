"""CheckService (家庭经济状况核对): decode, call node/services/checks.py off the event loop, encode."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator

import grpc
from exnode.v1 import checks_pb2 as pb
from exnode.v1 import checks_pb2_grpc

from catalog.checks import HouseholdCheck, Member
from catalog.errors import InvalidField
from node.grpc.convert import timestamp_of
from node.ops.request_context import current, principal
from node.services.checks import CheckApplication

WATCH_POLL_S = 0.3


def _stamp(value: dt.datetime | None, message: object, field: str) -> None:
    if value is not None:
        getattr(message, field).FromDatetime(value.astimezone(dt.UTC).replace(tzinfo=None))


def check_to_proto(check: HouseholdCheck) -> pb.HouseholdCheck:
    message = pb.HouseholdCheck(
        id=check.id, requester_code=check.requester_code, purpose=check.purpose, authorisation=check.authorisation,
        complete=check.complete, members=[pb.HouseholdMember(id_number=m.id_number, name=m.name)
                                          for m in check.members])
    _stamp(check.deadline, message, "deadline")
    _stamp(check.created_at, message, "created_at")
    for target in check.targets:
        state = pb.CheckTargetState(name=target.name, category=target.category, state=target.state.value,
                                    reason=target.reason, key_id=target.kid, signature=target.signature,
                                    findings=json.dumps(list(target.findings), ensure_ascii=False).encode())
        _stamp(target.answered_at, state, "answered_at")
        message.targets.append(state)
    return message


class CheckServicer(checks_pb2_grpc.CheckServiceServicer):
    def __init__(self, app: CheckApplication) -> None:
        self.app = app

    async def FileCheck(self, request: pb.FileCheckRequest, context: grpc.aio.ServicerContext) -> pb.HouseholdCheck:
        deadline = timestamp_of(request, "deadline")
        if deadline is None:
            raise InvalidField.one("deadline", "is required")
        check = await asyncio.to_thread(
            self.app.file_check, principal(), [Member(m.id_number, m.name) for m in request.members], request.purpose,
            request.authorisation, [(t.name, t.category) for t in request.targets], deadline)
        current().target = f"check:{check.id}"
        current().detail = (f"{len(check.members)} members, targets {', '.join(t.name for t in check.targets)}; "
                            f"authorisation {check.authorisation}")
        return check_to_proto(check)

    async def GetCheck(self, request: pb.GetCheckRequest, context: grpc.aio.ServicerContext) -> pb.HouseholdCheck:
        current().target = f"check:{request.id}"
        return check_to_proto(await asyncio.to_thread(self.app.get_check, principal(), request.id))

    async def WatchCheck(self, request: pb.GetCheckRequest, context: grpc.aio.ServicerContext
                         ) -> AsyncIterator[pb.HouseholdCheck]:
        current().target = f"check:{request.id}"
        caller = principal()
        seen: tuple | None = None
        while True:
            check = await asyncio.to_thread(self.app.get_check, caller, request.id)
            now = tuple((t.name, t.state.value) for t in check.targets)
            if now != seen:
                seen = now
                yield check_to_proto(check)
            if check.complete:
                return
            await asyncio.sleep(WATCH_POLL_S)

    async def ExportCheck(self, request: pb.ExportCheckRequest, context: grpc.aio.ServicerContext
                          ) -> pb.ExportCheckResponse:
        current().target = f"check:{request.id}"
        fmt = request.format or "csv"
        if fmt not in ("csv", "xml"):
            raise InvalidField.one("format", f"unknown format {request.format!r} (csv or xml)")
        export = self.app.export_xml if fmt == "xml" else self.app.export_csv
        content = await asyncio.to_thread(export, principal(), request.id)
        return pb.ExportCheckResponse(content=content, filename=f"核对报告-{request.id}.{fmt}")
