"""Persistence of the web console's sessions (``console_sessions``): one row per signed-in browser,
found by the hash of its cookie id."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from node.storage.tables import console_sessions


@dataclass
class SessionRow:
    id_hash: str
    subject: str
    department_code: str
    roles: tuple[str, ...]
    issuer: str
    token_id: str
    token_expires_at: float
    csrf_token: str
    via: str
    created: float
    last_seen: float
    expires: float
    flash: list[str]


class ConsoleSessionRepository:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def add(self, row: SessionRow) -> None:
        values = {**row.__dict__, "roles": json.dumps(sorted(row.roles)), "flash": json.dumps(row.flash)}
        self.connection.execute(insert(console_sessions).values(**values))

    def get(self, id_hash: str) -> SessionRow | None:
        found = self.connection.execute(
            select(console_sessions).where(console_sessions.c.id_hash == id_hash)).mappings().first()
        if found is None:
            return None
        return SessionRow(**{**found, "roles": tuple(json.loads(found["roles"])), "flash": json.loads(found["flash"])})

    def touch(self, id_hash: str, now: float) -> None:
        self.connection.execute(update(console_sessions).where(console_sessions.c.id_hash == id_hash)
                                .values(last_seen=now))

    def set_flash(self, id_hash: str, flash: list[str]) -> None:
        self.connection.execute(update(console_sessions).where(console_sessions.c.id_hash == id_hash)
                                .values(flash=json.dumps(flash, ensure_ascii=False)))

    def remove(self, id_hash: str) -> None:
        self.connection.execute(delete(console_sessions).where(console_sessions.c.id_hash == id_hash))

    def remove_expired(self, now: float, idle_timeout_s: float) -> int:
        c = console_sessions.c
        return self.connection.execute(delete(console_sessions).where(
            or_(c.expires <= now, c.last_seen < now - idle_timeout_s))).rowcount

    def count_live(self, now: float, idle_timeout_s: float) -> int:
        c = console_sessions.c
        return self.connection.execute(select(func.count()).select_from(console_sessions).where(
            c.expires > now, c.last_seen >= now - idle_timeout_s)).scalar_one()
