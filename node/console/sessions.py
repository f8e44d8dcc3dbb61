"""Console sessions: held by the node (the cookie carries only a random id), so signing out or a timeout
ends a session at once. 等保 2.0 level 3 asks for an idle timeout and an absolute limit; both apply, and a
session never outlives the token it was opened with."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from security.identity import Principal

COOKIE = "exnode_console"


@dataclass
class Session:
    id: str
    principal: Principal
    csrf_token: str
    created: float
    last_seen: float
    expires: float
    """The absolute end: sign-in + the absolute limit, or the token's expiry if sooner."""
    via: str = "jwt"
    """How the person signed in: ``jwt`` (a pasted token of the identity service) or ``dev``."""
    flash: list[str] = field(default_factory=list)


class SessionStore:
    """Sessions by id, in this process (a console replica keeps its own; a person signs in again there)."""

    def __init__(self, idle_timeout_s: float, absolute_timeout_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.idle_timeout_s = idle_timeout_s
        self.absolute_timeout_s = absolute_timeout_s
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, principal: Principal, via: str) -> Session:
        now = self.clock()
        expires = now + self.absolute_timeout_s
        if principal.expires_at:
            expires = min(expires, principal.expires_at)
        session = Session(secrets.token_urlsafe(32), principal, secrets.token_urlsafe(32), now, now, expires, via)
        with self._lock:
            self._drop_expired(now)
            self._sessions[session.id] = session
        return session

    def get(self, session_id: str) -> tuple[Session | None, str]:
        """The live session and "" — or None and why not ("" when there was none, else "expired")."""
        if not session_id:
            return None, ""
        now = self.clock()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None, "unknown"
            if now - session.last_seen > self.idle_timeout_s or now >= session.expires:
                del self._sessions[session_id]
                return None, "expired"
            session.last_seen = now
            return session, ""

    def close(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._sessions)

    def _drop_expired(self, now: float) -> None:
        stale = [sid for sid, s in self._sessions.items()
                 if now - s.last_seen > self.idle_timeout_s or now >= s.expires]
        for sid in stale:
            del self._sessions[sid]
