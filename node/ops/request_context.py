"""The current request, as the interceptor established it: who calls, and what the audit entry says.

A context variable, so servicers reach it without threading it through every signature; asyncio tasks
and ``asyncio.to_thread`` copy it, and the object is shared, so what a servicer sets (the target, a
detail) is what the interceptor writes to the audit trail.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

from security.identity import Principal


@dataclass
class RequestContext:
    request_id: str
    method: str
    peer: str
    principal: Principal | None = None
    target: str = ""
    detail: str = ""


_current: contextvars.ContextVar[RequestContext] = contextvars.ContextVar("exnode_request")


def current() -> RequestContext:
    """The request being served; a servicer outside the interceptor is a wiring bug."""
    try:
        return _current.get()
    except LookupError:
        raise RuntimeError("no request context: the auth interceptor is not installed") from None


def principal() -> Principal:
    context = current()
    assert context.principal is not None, "unauthenticated request reached a servicer"
    return context.principal


def set_current(context: RequestContext) -> contextvars.Token:
    return _current.set(context)


def reset(token: contextvars.Token) -> None:
    _current.reset(token)


def request_id() -> str:
    """The id of the request being served, or "" outside one (log lines use it; never raises)."""
    context = _current.get(None)
    return context.request_id if context is not None else ""
