"""Console sessions on the real databases (SQLite and PostgreSQL): they end after the idle timeout, at the
absolute limit, at the token's expiry and on sign-out (等保 2.0 level 3 session timeouts), and two
processes of one node (two stores, each with its own engine, on one database) see the same sessions."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from node.console.sessions import TOUCH_S, SessionStore
from node.storage.database import make_engine, migrate
from node.storage.tables import console_sessions
from node.storage.unit_of_work import SqlUnitOfWorkFactory
from security.identity import Principal


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def factories(database_url: str) -> Iterator[tuple[SqlUnitOfWorkFactory, SqlUnitOfWorkFactory]]:
    """Two engines on one database: what two processes of the node hold."""
    migrate(database_url)
    engines = [make_engine(database_url), make_engine(database_url)]
    yield SqlUnitOfWorkFactory(engines[0]), SqlUnitOfWorkFactory(engines[1])
    for engine in engines:
        engine.dispose()


def person(expires_at: float = 0.0) -> Principal:
    return Principal("wang", "11100000MB01284764", frozenset({"security_officer", "consumer"}), issuer="dev",
                     token_id="t-1", expires_at=expires_at)


def test_a_session_unused_for_the_idle_timeout_is_over(factories):
    clock = Clock()
    store = SessionStore(factories[0], 900, 8 * 3600, clock)
    session = store.open(person(), "dev")
    clock.now += 899
    assert store.get(session.id)[0].principal == person()  # used: the idle clock starts again
    clock.now += 899
    assert store.get(session.id)[0] is not None
    clock.now += 901
    assert store.get(session.id) == (None, "expired")
    assert store.get(session.id) == (None, "unknown")


def test_the_idle_clock_is_written_at_most_every_touch_interval_and_never_extends_a_session(factories):
    clock = Clock()
    store = SessionStore(factories[0], 900, 8 * 3600, clock)
    session = store.open(person(), "dev")
    for _ in range(int(900 // 10)):  # a page every 10 s for 15 minutes: the session lives on
        clock.now += 10
        assert store.get(session.id)[0] is not None
    with factories[0]() as uow:
        written = uow.connection.execute(select(console_sessions.c.last_seen)).scalar_one()
    assert clock.now - TOUCH_S <= written <= clock.now
    clock.now = written + 901  # 901 s after the last written use: over, even if a page came in between
    assert store.get(session.id) == (None, "expired")


def test_a_busy_session_still_ends_at_the_absolute_limit(factories):
    clock = Clock()
    store = SessionStore(factories[0], 900, 3600, clock)
    session = store.open(person(), "jwt")
    for _ in range(7):
        clock.now += 500
        assert store.get(session.id)[0] is not None
    clock.now += 200  # 3,700 s after sign-in
    assert store.get(session.id) == (None, "expired")


def test_a_session_never_outlives_its_token(factories):
    clock = Clock()
    store = SessionStore(factories[0], 900, 8 * 3600, clock)
    session = store.open(person(expires_at=clock.now + 60), "jwt")
    clock.now += 61
    assert store.get(session.id) == (None, "expired")


def test_sign_out_ends_the_session_and_ids_and_csrf_tokens_are_unguessable(factories):
    store = SessionStore(factories[0], 900, 3600)
    one, two = store.open(person(), "dev"), store.open(person(), "dev")
    assert len({one.id, two.id, one.csrf_token, two.csrf_token}) == 4 and len(one.id) >= 40
    store.close(one.id)
    assert store.get(one.id) == (None, "unknown") and store.get(two.id)[0].csrf_token == two.csrf_token
    assert store.get("") == (None, "")
    assert len(store) == 1


def test_the_database_holds_no_usable_cookie_and_no_token(factories):
    store = SessionStore(factories[0], 900, 3600)
    session = store.open(person(), "dev")
    with factories[0]() as uow:
        rows = [dict(r) for r in uow.connection.execute(select(console_sessions)).mappings()]
    assert [r["id_hash"] for r in rows] == [hashlib.sha256(session.id.encode()).hexdigest()]
    assert session.id not in repr(rows)


def test_two_processes_share_sessions_sign_out_and_flash_messages(factories):
    """Signed in on one process, the next page on another finds the session, its CSRF token and the
    message left by the action before; a sign-out on either ends it on both."""
    clock = Clock()
    first, second = (SessionStore(f, 900, 3600, clock) for f in factories)
    session = first.open(person(), "dev")
    first.flash(session, "需求 D-1 已提交")
    there, why = second.get(session.id)
    assert why == "" and there is not None
    assert there.principal == person() and there.csrf_token == session.csrf_token and there.via == "dev"
    assert second.take_flash(there) == ["需求 D-1 已提交"]
    assert first.get(session.id)[0].flash == []  # shown once, wherever
    second.close(session.id)
    assert first.get(session.id) == (None, "unknown")


def test_signing_in_clears_sessions_that_ended(factories):
    clock = Clock()
    store = SessionStore(factories[0], 900, 3600, clock)
    for _ in range(3):
        store.open(person(), "dev")
    clock.now += 901
    store.open(person(), "dev")
    with factories[0]() as uow:
        assert len(uow.connection.execute(select(console_sessions.c.id_hash)).all()) == 1
