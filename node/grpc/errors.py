"""Domain errors → gRPC status, in one table, applied by one interceptor (STYLE.md §3)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from catalog.errors import (
    AlreadyExists,
    Conflict,
    IllegalTransition,
    InvalidBatch,
    InvalidField,
    NotFound,
)
from node.grpc.handlers import Behaviour, wrap_handler
from node.services.audit import AuditUnavailable
from node.services.errors import BadSignature, BrokerUnavailable
from node.services.errors import RequestTooLarge as ExchangeTooLarge
from node.services.pull import AckTimeout, NotReady
from security.identity import AuthenticationError
from security.policy import PermissionDenied

log = logging.getLogger(__name__)

STATUS_OF: list[tuple[type[Exception], grpc.StatusCode]] = [
    (InvalidField, grpc.StatusCode.INVALID_ARGUMENT),
    (InvalidBatch, grpc.StatusCode.INVALID_ARGUMENT),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (IllegalTransition, grpc.StatusCode.FAILED_PRECONDITION),
    (Conflict, grpc.StatusCode.ABORTED),
]


class RequestTooLarge(Exception):
    """A request within gRPC's message limit but over a per-field limit of the node."""


STATUS_OF += [
    (RequestTooLarge, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (AuditUnavailable, grpc.StatusCode.UNAVAILABLE),
    (ExchangeTooLarge, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (BadSignature, grpc.StatusCode.INVALID_ARGUMENT),
    (BrokerUnavailable, grpc.StatusCode.UNAVAILABLE),
    (AuthenticationError, grpc.StatusCode.UNAUTHENTICATED),  # a watch outliving its bearer token
    (NotReady, grpc.StatusCode.FAILED_PRECONDITION),
    (AckTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
]
MAPPED = tuple(kind for kind, _ in STATUS_OF)


def status_for(error: Exception) -> grpc.StatusCode | None:
    for kind, code in STATUS_OF:
        if isinstance(error, kind):
            return code
    return None


def rich_status(code: grpc.StatusCode, error: Exception) -> status_pb2.Status:
    """A google.rpc.Status whose BadRequest details list every invalid field, so clients (the CLI's
    import) can point at each bad entry."""
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=str(error))
    violations: list[error_details_pb2.BadRequest.FieldViolation] = []
    if isinstance(error, InvalidField):
        violations = [error_details_pb2.BadRequest.FieldViolation(field=p.field, description=p.reason)
                      for p in error.problems]
    elif isinstance(error, InvalidBatch):
        violations = [
            error_details_pb2.BadRequest.FieldViolation(field=f"resources[{e.index}].{p.field}".rstrip("."),
                                                        description=p.reason)
            for e in error.entries for p in e.problems
        ]
    if violations:
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.BadRequest(field_violations=violations))
        status.details.append(detail)
    return status


async def _abort(context: grpc.aio.ServicerContext, error: Exception) -> None:
    code = status_for(error)
    assert code is not None, f"unmapped error {error!r}"
    await context.abort_with_status(rpc_status.to_status(rich_status(code, error)))


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):
    """Turns domain exceptions into the gRPC status of the table above, for every method."""

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        return wrap_handler(await continuation(handler_call_details), _map_single, _map_stream)


def _map_single(behaviour: Behaviour) -> Behaviour:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await behaviour(request, context)
        except MAPPED as error:
            await _abort(context, error)

    return call


def _map_stream(behaviour: Behaviour) -> Behaviour:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            async for item in behaviour(request, context):
                yield item
        except MAPPED as error:
            await _abort(context, error)

    return call
