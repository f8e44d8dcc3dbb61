"""Per-department limits on the gRPC port: concurrent streams and a request rate (a token bucket), so that
one department's client — a runaway loop, a pull started a hundred times — cannot take the node from the
others. Refusals are RESOURCE_EXHAUSTED with a retry hint (google.rpc.RetryInfo), naming the setting.

Calls without a department (health checking) are not limited. The interceptor sits inside the
authentication interceptor (it needs the caller's department) and inside the error mapping (which turns
its refusals into statuses)."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from node.grpc.handlers import Behaviour, WrappedHandlers, wrap_handler
from node.ops.request_context import current
from node.services.errors import RateLimited, TooManyStreams


class DepartmentLimits:
    """The counters: open streams and a token bucket per department. ``max_streams`` or ``rate_per_s`` 0: off."""

    def __init__(self, *, max_streams: int, rate_per_s: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_streams = max_streams
        self.rate_per_s = rate_per_s
        self.burst = max(1, burst)
        self.clock = clock
        self._lock = threading.Lock()
        self._streams: dict[str, int] = {}
        self._buckets: dict[str, tuple[float, float]] = {}
        """department → (tokens, when counted)."""

    def admit(self, department: str) -> None:
        """One request of ``department``: a token, or RateLimited saying when the next one is there."""
        if self.rate_per_s <= 0:
            return
        with self._lock:
            now = self.clock()
            tokens, then = self._buckets.get(department, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - then) * self.rate_per_s)
            if tokens < 1.0:
                self._buckets[department] = (tokens, now)
                wait = (1.0 - tokens) / self.rate_per_s
                raise RateLimited(f"department {department} is over its request rate ({self.rate_per_s:g}/s, "
                                  f"burst {self.burst}; server.department_requests_per_s): retry after "
                                  f"{wait:.2f} s", retry_after_s=wait)
            self._buckets[department] = (tokens - 1.0, now)

    def open_stream(self, department: str) -> None:
        if self.max_streams <= 0:
            return
        with self._lock:
            open_now = self._streams.get(department, 0)
            if open_now >= self.max_streams:
                raise TooManyStreams(f"department {department} already has {open_now} open streams (at most "
                                     f"{self.max_streams}: server.department_max_streams); retry when one ends",
                                     retry_after_s=1.0)
            self._streams[department] = open_now + 1

    def close_stream(self, department: str) -> None:
        if self.max_streams <= 0:
            return
        with self._lock:
            left = self._streams.get(department, 1) - 1
            if left > 0:
                self._streams[department] = left
            else:
                self._streams.pop(department, None)

    def open_streams(self, department: str) -> int:
        with self._lock:
            return self._streams.get(department, 0)


def _department() -> str:
    try:
        principal = current().principal
    except RuntimeError:
        return ""
    return principal.department_code if principal is not None else ""


class LimitsInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, limits: DepartmentLimits) -> None:
        self.limits = limits
        self._handlers = WrappedHandlers()

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        return self._handlers.get(handler_call_details.method, await continuation(handler_call_details), self._wrap)

    def _wrap(self, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler | None:
        streaming = bool(handler.request_streaming or handler.response_streaming)
        return wrap_handler(handler, lambda b: self._single(b, streaming), lambda b: self._stream(b))

    def _single(self, behaviour: Behaviour, streaming: bool) -> Behaviour:
        limits = self.limits

        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            department = _department()
            if not department:
                return await behaviour(request, context)
            limits.admit(department)
            if not streaming:
                return await behaviour(request, context)
            limits.open_stream(department)
            try:
                return await behaviour(request, context)
            finally:
                limits.close_stream(department)

        return call

    def _stream(self, behaviour: Behaviour) -> Behaviour:
        limits = self.limits

        async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            department = _department()
            if not department:
                async for item in behaviour(request, context):
                    yield item
                return
            limits.admit(department)
            limits.open_stream(department)
            try:
                async for item in behaviour(request, context):
                    yield item
            finally:
                limits.close_stream(department)

        return call
