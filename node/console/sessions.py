"""Console sessions: held in the node's database (the cookie carries only a random id), so every process
of the node — replicas behind one address (DESIGN §10) — sees the same sessions, and signing out or a
timeout ends a session everywhere at once. 等保 2.0 level 3 asks for an idle timeout and an absolute
limit; both apply, and a session never outlives the token it was opened with.

Per request a session costs one primary-key read; ``last_seen`` is written at most every ``TOUCH_S``
(a write per page would queue every page behind SQLite's one writer), so the idle timeout is kept to
within ``TOUCH_S`` — a session may end up to that much early, never late."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from node.storage.session_repository import SessionRow
from node.storage.unit_of_work import UnitOfWorkFactory
from security.identity import Principal

COOKIE = "exnode_console"
TOUCH_S = 30.0


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
    """How the person signed in: ``jwt`` (a pasted token of the identity service), ``oidc`` or ``dev``."""
    flash: list[str] = field(default_factory=list)
    """Messages for the next page, as read with the session (``SessionStore.flash`` adds one)."""


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    """Sessions by id, in the node's database (blocking calls: the console runs them in a thread)."""

    def __init__(self, uow: UnitOfWorkFactory, idle_timeout_s: float, absolute_timeout_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.uow = uow
        self.idle_timeout_s = idle_timeout_s
        self.absolute_timeout_s = absolute_timeout_s
        self.clock = clock

    def open(self, principal: Principal, via: str) -> Session:
        now = self.clock()
        expires = now + self.absolute_timeout_s
        if principal.expires_at:
            expires = min(expires, principal.expires_at)
        session = Session(secrets.token_urlsafe(32), principal, secrets.token_urlsafe(32), now, now, expires, via)
        with self.uow(write=True) as uow:
            uow.console_sessions.remove_expired(now, self.idle_timeout_s)
            uow.console_sessions.add(SessionRow(
                _hash(session.id), principal.subject, principal.department_code, tuple(principal.roles),
                principal.issuer, principal.token_id, principal.expires_at, session.csrf_token, via, now, now,
                expires, []))
            uow.commit()
        return session

    def get(self, session_id: str) -> tuple[Session | None, str]:
        """The live session and "" — or None and why not ("" when there was none, else "unknown" or
        "expired")."""
        if not session_id:
            return None, ""
        now = self.clock()
        key = _hash(session_id)
        with self.uow() as uow:
            row = uow.console_sessions.get(key)
        if row is None:
            return None, "unknown"
        if now - row.last_seen > self.idle_timeout_s or now >= row.expires:
            self._write(lambda uow: uow.console_sessions.remove(key))
            return None, "expired"
        if now - row.last_seen >= TOUCH_S:
            self._write(lambda uow: uow.console_sessions.touch(key, now))
        principal = Principal(row.subject, row.department_code, frozenset(row.roles), row.issuer, row.token_id,
                              row.token_expires_at)
        return Session(session_id, principal, row.csrf_token, row.created, now, row.expires, row.via,
                       row.flash), ""

    def flash(self, session: Session, message: str) -> None:
        """A message for the session's next page (which any process of the node may serve)."""
        session.flash.append(message)
        self._write(lambda uow: uow.console_sessions.set_flash(_hash(session.id), session.flash))

    def take_flash(self, session: Session) -> list[str]:
        """The messages waiting for this page, cleared (a write only when there were some)."""
        taken = list(session.flash)
        if taken:
            session.flash.clear()
            self._write(lambda uow: uow.console_sessions.set_flash(_hash(session.id), []))
        return taken

    def close(self, session_id: str) -> None:
        self._write(lambda uow: uow.console_sessions.remove(_hash(session_id)))

    def __len__(self) -> int:
        now = self.clock()
        with self.uow() as uow:
            return uow.console_sessions.count_live(now, self.idle_timeout_s)

    def _write(self, change: Callable) -> None:
        with self.uow(write=True) as uow:
            change(uow)
            uow.commit()
