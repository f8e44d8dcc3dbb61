"""The current request, as the interceptor established it: who calls, and what the audit entry says.

A context variable, so servicers reach it without threading it through every signature; asyncio tasks
and ``asyncio.to_thread`` copy it, and the object is shared, so what a servicer sets (the target, a
detail) is what the interceptor writes to the audit trail.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from security.identity import Principal


@dataclass
class RequestContext:
    request_id: str
    method: str
    peer: str
    principal: Principal | None = None
    target: str = ""
    detail: str = ""
    audit_in: Callable[[RequestContext, Any, str, str], None] | None = None
    """``audit_in(context, uow, detail, result)`` appends the call's entry (``result`` "OK", or CANCELLED /
    DEADLINE_EXCEEDED when the caller left while the work ran) inside a unit of work of the servicer's: a
    verification's entry commits with its quota count, one commit for both (set by the interceptor)."""
    committed_ok: bool = False
    """The call's entry was written that way and committed (set by the servicer once its transaction did): the
    interceptor writes no other entry for the call, whether it then succeeds or fails to be delivered."""


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
