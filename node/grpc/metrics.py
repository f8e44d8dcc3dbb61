"""The interceptor that measures every RPC: count by method and status code, latency by method."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from prometheus_client import Counter, Histogram

from node.grpc.handlers import Behaviour, WrappedHandlers, wrap_handler

RPC_TOTAL = Counter("exnode_rpc_total", "gRPC calls served, by method and status code", ["method", "code"])
RPC_SECONDS = Histogram(
    "exnode_rpc_duration_seconds", "gRPC call latency, by method", ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

def _code_of(context: grpc.aio.ServicerContext, error: BaseException | None) -> str:
    code = context.code()
    if code is None:
        return "OK" if error is None else "UNKNOWN"
    return code.name if isinstance(code, grpc.StatusCode) else str(code)


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self) -> None:
        self._handlers = WrappedHandlers()

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        return self._handlers.get(method, await continuation(handler_call_details),
                                  lambda handler: wrap_handler(handler, _single(method), _stream(method)))


def _single(method: str) -> Callable[[Behaviour], Behaviour]:
    def wrap(behaviour: Behaviour) -> Behaviour:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            start, error = time.perf_counter(), None
            try:
                return await behaviour(request, context)
            except BaseException as caught:
                error = caught
                raise
            finally:
                RPC_SECONDS.labels(method).observe(time.perf_counter() - start)
                RPC_TOTAL.labels(method, _code_of(context, error)).inc()

        return call

    return wrap


def _stream(method: str) -> Callable[[Behaviour], Behaviour]:
    def wrap(behaviour: Behaviour) -> Behaviour:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            start, error = time.perf_counter(), None
            try:
                async for item in behaviour(request, context):
                    yield item
            except BaseException as caught:
                error = caught
                raise
            finally:
                RPC_SECONDS.labels(method).observe(time.perf_counter() - start)
                RPC_TOTAL.labels(method, _code_of(context, error)).inc()

        return call

    return wrap
