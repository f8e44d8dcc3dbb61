"""Console sessions end after the idle timeout, at the absolute limit, at the token's expiry, and on
sign-out (等保 2.0 level 3 session timeouts); the policy keeps officers out of the operator's view."""

from __future__ import annotations

from node.console.sessions import SessionStore
from security.identity import Principal
from security.policy import NODE_STATE, Action, Policy


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def person(expires_at: float = 0.0) -> Principal:
    return Principal("wang", "11100000MB01284764", frozenset({"security_officer"}), expires_at=expires_at)


def test_a_session_unused_for_the_idle_timeout_is_over():
    clock = Clock()
    store = SessionStore(900, 8 * 3600, clock)
    session = store.open(person(), "dev")
    clock.now += 899
    assert store.get(session.id)[0] is session  # used: the idle clock starts again
    clock.now += 899
    assert store.get(session.id)[0] is session
    clock.now += 901
    assert store.get(session.id) == (None, "expired")
    assert store.get(session.id) == (None, "unknown")


def test_a_busy_session_still_ends_at_the_absolute_limit():
    clock = Clock()
    store = SessionStore(900, 3600, clock)
    session = store.open(person(), "jwt")
    for _ in range(7):
        clock.now += 500
        assert store.get(session.id)[0] is session
    clock.now += 200  # 3,700 s after sign-in
    assert store.get(session.id) == (None, "expired")


def test_a_session_never_outlives_its_token():
    clock = Clock()
    store = SessionStore(900, 8 * 3600, clock)
    session = store.open(person(expires_at=clock.now + 60), "jwt")
    clock.now += 61
    assert store.get(session.id) == (None, "expired")


def test_sign_out_ends_the_session_and_ids_and_csrf_tokens_are_unguessable():
    store = SessionStore(900, 3600)
    one, two = store.open(person(), "dev"), store.open(person(), "dev")
    assert len({one.id, two.id, one.csrf_token, two.csrf_token}) == 4 and len(one.id) >= 40
    store.close(one.id)
    assert store.get(one.id) == (None, "unknown") and store.get(two.id)[0] is two
    assert store.get("") == (None, "")


def test_only_operators_see_the_running_state():
    policy = Policy()
    operator = Principal("sun", "11100000MB01284764", frozenset({"operator"}))
    officer = Principal("wang", "11100000MB01284764", frozenset({"security_officer"}))
    admin = Principal("zhao", "11100000MB01284764", frozenset({"catalog_admin"}))
    assert policy.decide(operator, Action.NODE_OPERATE, NODE_STATE)
    assert not policy.decide(officer, Action.NODE_OPERATE, NODE_STATE)
    assert "operator role" in policy.decide(admin, Action.NODE_OPERATE, NODE_STATE).reason
