"""Authentication and the audit trail for every RPC (health checking excepted).

The interceptor verifies the bearer token, makes the caller the request's principal, runs the method,
and appends one audit entry with the outcome (allowed or denied, the status code and its message)
before the answer leaves the node: the response waits for the entry's commit, so an answered request
always has its entry. Streaming responses get an entry before the first message (result STARTED) and
one with the final status.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from prometheus_client import Counter

from node.grpc.errors import code_for, unless_gone
from node.grpc.handlers import Behaviour, WrappedHandlers, wrap_handler
from node.ops.request_context import RequestContext, reset, set_current
from node.services.audit import AuditUnavailable, AuditWriter
from node.services.remote import CALLER_DEADLINE, DEADLINE_SLACK_S
from security.audit import AuditRecord
from security.identity import AuthenticationError, TokenVerifier

log = logging.getLogger(__name__)
UNAUTHENTICATED_METHODS = ("/grpc.health.v1.Health/",)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")
MAX_DETAIL = 2000

AUTH_FAILURES = Counter("exnode_auth_failures_total", "Requests refused as unauthenticated, by reason", ["reason"])
AUDIT_ENTRIES = Counter("exnode_audit_entries_total", "Audit entries appended, by result", ["result"])


def _metadata(context: grpc.aio.ServicerContext, key: str) -> str:
    for name, value in context.invocation_metadata() or ():
        if name == key:
            return value if isinstance(value, str) else value.decode("utf-8", "replace")
    return ""


def bearer_token(context: grpc.aio.ServicerContext) -> str:
    header = _metadata(context, "authorization")
    scheme, _, token = header.partition(" ")
    if header and scheme.lower() != "bearer":
        raise AuthenticationError("malformed_token", "the authorization header must be 'Bearer <JWT>'")
    return token.strip()


def _request_id(context: grpc.aio.ServicerContext) -> str:
    given = _metadata(context, "x-request-id")
    return given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def _short(method: str) -> str:
    """``/exnode.v1.CatalogService/GetResource`` → ``CatalogService/GetResource``."""
    service, _, name = method.lstrip("/").partition("/")
    return f"{service.rsplit('.', 1)[-1]}/{name}"


def _outcome(context: grpc.aio.ServicerContext, error: BaseException | None) -> tuple[str, str]:
    if error is None:
        return "OK", ""
    code = context.code()
    if isinstance(code, grpc.StatusCode) and code is not grpc.StatusCode.OK:
        return code.name, str(context.details() or "")
    if isinstance(error, asyncio.CancelledError | GeneratorExit) or context.cancelled():
        remaining = context.time_remaining()
        if remaining is not None and remaining <= DEADLINE_SLACK_S:
            return "DEADLINE_EXCEEDED", "the caller's deadline passed before the answer was sent"
        return "CANCELLED", "the client cancelled, or the node is shutting down"
    return "UNKNOWN", f"{type(error).__name__}: {error}"


class _AuditedContext:
    """The servicer context as the inner layers see it: an abort (the error mapping's, or a servicer's own)
    sends the status to the caller at once, so the audit entry is written first, keeping the promise that
    an answered request always has its entry. Everything else is the real context."""

    def __init__(self, context: grpc.aio.ServicerContext,
                 audit: Callable[[str, str], Awaitable[None]]) -> None:
        self._context = context
        self._audit = audit
        self.audited = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    async def _record(self, code: grpc.StatusCode, details: str) -> None:
        if not self.audited:
            self.audited = True
            await self._audit(code.name, details or "")

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()) -> None:
        await self._record(code, details)
        await unless_gone(self._context.abort(code, details, trailing_metadata))

    async def abort_with_status(self, status: grpc.Status) -> None:
        await self._record(status.code, status.details)
        await self._context.abort_with_status(status)


class AuthAuditInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, verifier: TokenVerifier, writer: AuditWriter,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self.verifier = verifier
        self.writer = writer
        self.clock = clock
        self._handlers = WrappedHandlers()

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if method.startswith(UNAUTHENTICATED_METHODS):
            return handler
        return self._handlers.get(method, handler, lambda inner: wrap_handler(
            inner, self._single(_short(method)), self._stream(_short(method))))

    async def _audit(self, context: RequestContext, result: str, detail: str) -> None:
        """Queue the call's entry, then wait for its commit. The entry is queued before anything can be
        awaited, so a caller that cancels or runs out of time still leaves it. The future is this call's
        alone (the writer skips one that is done), so a cancelled wait cancels only the wait: no shield,
        which cost every call a second future and two more callbacks."""
        record = self._record(context, result, detail)
        try:
            if not (result == "OK" and context.committed_ok):  # else committed with the call's own writes
                await self.writer.submit_async(record)
        finally:
            # The access log line: its request_id is the audit entry's, so one leads to the other.
            log.info("rpc %s %s", context.method, result, extra={
                "request_id": context.request_id, "method": context.method, "result": result,
                "subject": record.subject, "department_code": record.department_code, "peer": record.peer})
        AUDIT_ENTRIES.labels(result).inc()

    def _record(self, context: RequestContext, result: str, detail: str) -> AuditRecord:
        principal = context.principal
        return AuditRecord(
            at=self.clock(), request_id=context.request_id,
            subject=principal.subject if principal else "", department_code=principal.department_code if principal else "",
            roles=tuple(sorted(principal.roles)) if principal else (), action=context.method,
            target=context.target[:200], result=result, peer=context.peer[:100],
            detail=(detail or context.detail)[:MAX_DETAIL])

    def _audit_in(self, context: RequestContext, uow: Any, detail: str, result: str = "OK") -> None:
        """The call's entry in the servicer's transaction (``RequestContext.audit_in``): OK, or how its
        caller left while the work ran; the servicer sets ``committed_ok`` once that transaction committed."""
        context.detail = detail
        self.writer.join_batch(uow, [self._record(context, result, detail)])

    async def _authenticate(self, request: RequestContext, context: grpc.aio.ServicerContext,
                            audited: _AuditedContext) -> None:
        """Verify the bearer token; a refusal is audited, then aborts with UNAUTHENTICATED naming the problem."""
        await context.send_initial_metadata((("x-request-id", request.request_id),))
        try:
            request.principal = self.verifier.verify(bearer_token(context))
        except AuthenticationError as error:
            AUTH_FAILURES.labels(error.reason).inc()
            audited.audited = True
            await self._audit_or_abort(context, request, "UNAUTHENTICATED", f"{error.reason}: {error}")
            await unless_gone(context.abort(code_for(error), f"{error} ({error.reason})"))

    def _open(self, method: str, context: grpc.aio.ServicerContext) -> tuple[RequestContext, _AuditedContext]:
        request = RequestContext(request_id=_request_id(context), method=method, peer=context.peer() or "")
        request.audit_in = self._audit_in  # given the context by the caller: no cycle through the request
        return request, _AuditedContext(context, functools.partial(self._audit_failure, request))

    async def _audit_or_abort(self, grpc_context: grpc.aio.ServicerContext, request: RequestContext, result: str,
                              detail: str) -> None:
        try:
            await self._audit(request, result, detail)
        except AuditUnavailable as error:
            log.error("request refused: audit unavailable", extra={"request_id": request.request_id})
            await unless_gone(grpc_context.abort(code_for(error), str(error)))

    async def _audit_failure(self, request: RequestContext, result: str, detail: str) -> None:
        """The call already failed; an audit failure now is logged (the caller gets the original error).
        A call whose OK entry already committed with its writes (a counted verification) gets no second
        entry: the one it has is true of what the node did (its response is built before that commit), and
        the failure to deliver it is logged with the request id, as for any response lost on the wire."""
        if request.committed_ok:
            log.warning("rpc %s: answered and audited, then not delivered: %s %s", request.method, result,
                        detail, extra={"request_id": request.request_id, "result": result})
            return
        try:
            await self._audit(request, result, detail)
        except AuditUnavailable:
            log.critical("audit entry lost for a failed request", extra={"request_id": request.request_id,
                                                                         "result": result})

    def _single(self, method: str) -> Callable[[Behaviour], Behaviour]:
        def wrap(behaviour: Behaviour) -> Behaviour:
            async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
                rc, audited = self._open(method, context)
                token = set_current(rc)
                remaining = context.time_remaining()  # a routed request asks for no longer (remote.py)
                deadline = CALLER_DEADLINE.set(None if remaining is None else time.monotonic() + remaining)
                try:
                    try:
                        await self._authenticate(rc, context, audited)
                        response = await behaviour(request, audited)
                    except BaseException as error:
                        if not audited.audited:
                            audited.audited = True
                            await self._audit_failure(rc, *_outcome(context, error))
                        raise
                    await self._audit_or_abort(context, rc, "OK", "")
                    return response
                finally:
                    CALLER_DEADLINE.reset(deadline)
                    reset(token)

            return call

        return wrap

    def _stream(self, method: str) -> Callable[[Behaviour], Behaviour]:
        def wrap(behaviour: Behaviour) -> Behaviour:
            async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                rc, audited = self._open(method, context)
                token = set_current(rc)
                try:
                    started = False
                    try:
                        await self._authenticate(rc, context, audited)
                        async for item in behaviour(request, audited):
                            if not started:
                                await self._audit_or_abort(context, rc, "STARTED", "")
                                started = True
                            yield item
                    except BaseException as error:
                        if not audited.audited:
                            audited.audited = True
                            await self._audit_failure(rc, *_outcome(context, error))
                        raise
                    await self._audit_or_abort(context, rc, "OK", "")
                finally:
                    with contextlib.suppress(ValueError):
                        reset(token)

            return call

        return wrap

