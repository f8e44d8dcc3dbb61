"""Wrapping of gRPC method handlers, shared by the node's interceptors."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import grpc

Behaviour = Callable[..., Any]


def wrap_handler(
    handler: grpc.RpcMethodHandler | None,
    wrap_single: Callable[[Behaviour], Behaviour],
    wrap_stream: Callable[[Behaviour], Behaviour],
) -> grpc.RpcMethodHandler | None:
    """Rebuild ``handler`` with its behaviour wrapped: ``wrap_stream`` for behaviours that yield their
    responses (async generators), ``wrap_single`` for those that return (unary and client-streaming
    methods, and streaming methods written as coroutines that send with ``context.write``, as the
    standard health service's ``Watch`` is): a wrapper must be the same kind of function as what it wraps."""
    if handler is None:
        return None
    kinds = (
        ("unary_unary", grpc.unary_unary_rpc_method_handler, wrap_single),
        ("stream_unary", grpc.stream_unary_rpc_method_handler, wrap_single),
        ("unary_stream", grpc.unary_stream_rpc_method_handler, wrap_stream),
        ("stream_stream", grpc.stream_stream_rpc_method_handler, wrap_stream),
    )
    for attribute, factory, wrap in kinds:
        behaviour = getattr(handler, attribute)
        if behaviour is not None:
            if not inspect.isasyncgenfunction(behaviour):
                wrap = wrap_single
            return factory(wrap(behaviour), request_deserializer=handler.request_deserializer,
                           response_serializer=handler.response_serializer)
    return handler


class WrappedHandlers:
    """An interceptor's wrapped handlers, built once per method rather than once per call.

    Why: grpc.aio asks every interceptor for the handler on every call; rebuilding the wrapper closures and
    the handler each time was per-call churn on the request path. A wrapper holds nothing of one call, so
    the one built for a method's handler serves every later call of it (kept while the inner handler is
    the same object: the interceptor inside caches too, and the servicer's handler never changes)."""

    def __init__(self) -> None:
        self._built: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler | None]] = {}

    def get(self, method: str, handler: grpc.RpcMethodHandler | None,
            build: Callable[[grpc.RpcMethodHandler], grpc.RpcMethodHandler | None]) -> grpc.RpcMethodHandler | None:
        if handler is None:  # an unknown method: nothing to keep (its names are the caller's to choose)
            return None
        hit = self._built.get(method)
        if hit is not None and hit[0] is handler:
            return hit[1]
        wrapped = build(handler)
        self._built[method] = (handler, wrapped)
        return wrapped
