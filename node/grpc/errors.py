"""Domain errors → gRPC status, in one table, applied by one interceptor (STYLE.md §3)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc._cython.cygrpc import ExecuteBatchError  # what grpc.aio raises when a status cannot be sent
from grpc_status import rpc_status

from catalog.errors import (
    AlreadyExists,
    Conflict,
    IllegalTransition,
    InvalidBatch,
    InvalidField,
    NotFound,
)
from node.grpc.handlers import Behaviour, WrappedHandlers, wrap_handler
from node.services.errors import (
    AckTimeout,
    AuditUnavailable,
    BadSignature,
    BrokerUnavailable,
    CallerGone,
    NoEncryptionKey,
    NotReady,
    OutboxFull,
    QuotaExhausted,
    RemoteDeadline,
    RemoteDenied,
    RemoteExhausted,
    RemoteInvalid,
    RemoteNotFound,
    RemotePrecondition,
    RemoteRefused,
    RemoteUnauthenticated,
    RequestTooLarge,
    Throttled,
    TimestampsUnavailable,
)
from node.storage.errors import StorageFull, StorageUnavailable
from node.storage.secrecy import MissingDataKey
from security.identity import AuthenticationError
from security.policy import PermissionDenied
from security.secrecy import TamperedCiphertext

log = logging.getLogger(__name__)

STATUS_OF: list[tuple[type[Exception], grpc.StatusCode]] = [
    # the domain (catalog.errors)
    (InvalidField, grpc.StatusCode.INVALID_ARGUMENT),
    (InvalidBatch, grpc.StatusCode.INVALID_ARGUMENT),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (IllegalTransition, grpc.StatusCode.FAILED_PRECONDITION),
    (Conflict, grpc.StatusCode.ABORTED),
    # security: who the caller is, and what it may do
    (AuthenticationError, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    # secrecy: a stored row whose tag fails is corrupt or forged; one whose key is gone cannot be read
    (TamperedCiphertext, grpc.StatusCode.DATA_LOSS),
    (MissingDataKey, grpc.StatusCode.FAILED_PRECONDITION),
    # the use cases (node.services.errors)
    (RequestTooLarge, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (Throttled, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (QuotaExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (CallerGone, grpc.StatusCode.DEADLINE_EXCEEDED),
    # another node's refusal of a forwarded request (node/services/remote.py), as that node answered it
    (RemoteDenied, grpc.StatusCode.PERMISSION_DENIED),
    (RemoteInvalid, grpc.StatusCode.INVALID_ARGUMENT),
    (RemoteExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (RemoteNotFound, grpc.StatusCode.NOT_FOUND),
    (RemoteDeadline, grpc.StatusCode.DEADLINE_EXCEEDED),
    (RemotePrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (RemoteUnauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (RemoteRefused, grpc.StatusCode.UNAVAILABLE),
    (BadSignature, grpc.StatusCode.INVALID_ARGUMENT),
    (AuditUnavailable, grpc.StatusCode.UNAVAILABLE),
    (BrokerUnavailable, grpc.StatusCode.UNAVAILABLE),
    (OutboxFull, grpc.StatusCode.UNAVAILABLE),
    (TimestampsUnavailable, grpc.StatusCode.UNAVAILABLE),
    (NotReady, grpc.StatusCode.FAILED_PRECONDITION),
    (NoEncryptionKey, grpc.StatusCode.FAILED_PRECONDITION),
    (AckTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
    # the database (node.storage.errors): a failover in progress, a full disk
    (StorageUnavailable, grpc.StatusCode.UNAVAILABLE),
    (StorageFull, grpc.StatusCode.RESOURCE_EXHAUSTED),
]
"""Every mapping of an error to a gRPC status: the error-mapping interceptor and the authentication
interceptor both use it (a request that cannot be audited is UNAVAILABLE; a bad token UNAUTHENTICATED)."""
MAPPED = tuple(kind for kind, _ in STATUS_OF)


def status_for(error: Exception) -> grpc.StatusCode | None:
    for kind, code in STATUS_OF:
        if isinstance(error, kind):
            return code
    return None


def code_for(error: Exception) -> grpc.StatusCode:
    """The status of an error the table maps (a wiring bug otherwise: it would surface as UNKNOWN)."""
    code = status_for(error)
    assert code is not None, f"unmapped error {error!r}"
    return code


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
    if isinstance(error, Throttled):  # google.rpc.RetryInfo: when to try again
        hint = any_pb2.Any()
        delay = error_details_pb2.RetryInfo()
        delay.retry_delay.FromMilliseconds(max(1, int(error.retry_after_s * 1000)))
        hint.Pack(delay)
        status.details.append(hint)
    if violations:
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.BadRequest(field_violations=violations))
        status.details.append(detail)
    return status


async def unless_gone(send: Awaitable[None]) -> None:
    """Send a refusal's final status. A caller that went away meanwhile cannot get it: gRPC raises
    ExecuteBatchError, and its core would log that with a traceback for an expected condition, so the call
    ends as cancelled instead (what it is)."""
    try:
        await send
    except ExecuteBatchError:
        raise asyncio.CancelledError from None


async def _abort(context: grpc.aio.ServicerContext, error: Exception) -> None:
    await unless_gone(context.abort_with_status(rpc_status.to_status(rich_status(code_for(error), error))))


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):
    """Turns domain exceptions into the gRPC status of the table above, for every method."""

    def __init__(self) -> None:
        self._handlers = WrappedHandlers()

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        return self._handlers.get(handler_call_details.method, await continuation(handler_call_details),
                                  lambda handler: wrap_handler(handler, _map_single, _map_stream))


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
