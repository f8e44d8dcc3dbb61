"""The policy keeps officers out of the operator's view (the sessions' timeouts are tested on the real
databases in tests/integration/test_console_sessions.py)."""

from __future__ import annotations

from security.identity import Principal
from security.policy import NODE_STATE, Action, Policy


def test_only_operators_see_the_running_state():
    policy = Policy()
    operator = Principal("sun", "11100000MB01284764", frozenset({"operator"}))
    officer = Principal("wang", "11100000MB01284764", frozenset({"security_officer"}))
    admin = Principal("zhao", "11100000MB01284764", frozenset({"catalog_admin"}))
    assert policy.decide(operator, Action.NODE_OPERATE, NODE_STATE)
    assert not policy.decide(officer, Action.NODE_OPERATE, NODE_STATE)
    assert "operator role" in policy.decide(admin, Action.NODE_OPERATE, NODE_STATE).reason


def test_every_role_has_a_chinese_name_on_the_sign_in_page():
    from node.console.app import ROLE_NAMES
    from security.identity import ROLES

    assert set(ROLES) <= set(ROLE_NAMES), set(ROLES) - set(ROLE_NAMES)
