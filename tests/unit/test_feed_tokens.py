"""Resume tokens of the catalog feed: only what this node issued to this department is honoured."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from security import feed_tokens
from security.feed_tokens import ResumePoint, TokenRefused
from security.keys import KeyStore, UnusableKey

KEYS = {"k1": b"k" * 32, "k2": b"j" * 32}
DEPT = "11100000MB01284764"
OTHER = "11150100011627354Q"


def mac_key(kid: str) -> bytes:
    return KEYS[kid]


def check(token: str, *, node_id: str = "node-a", department: str = DEPT) -> ResumePoint:
    return feed_tokens.check(token, node_id=node_id, department_code=department, mac_key=mac_key)


def refused(token: str, **kwargs: str) -> TokenRefused:
    with pytest.raises(TokenRefused) as caught:
        check(token, **kwargs)
    return caught.value


def test_a_token_round_trips_with_any_key_of_the_node():
    for kid in KEYS:
        point = ResumePoint("node-a", DEPT, 42, kid)
        assert check(feed_tokens.issue(point, KEYS[kid])) == point


def test_an_altered_position_is_refused_as_forged():
    token = feed_tokens.issue(ResumePoint("node-a", DEPT, 42, "k1"), KEYS["k1"])
    payload, mac = token.removeprefix(feed_tokens.PREFIX).split(".")
    fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    fields["p"] = 0
    altered = base64.urlsafe_b64encode(json.dumps(fields).encode()).decode().rstrip("=")
    error = refused(f"{feed_tokens.PREFIX}{altered}.{mac}")
    assert error.reason == "forged" and "MAC" in str(error)


def test_a_token_made_with_another_key_is_forged():
    token = feed_tokens.issue(ResumePoint("node-a", DEPT, 1, "k1"), b"x" * 32)
    assert refused(token).reason == "forged"


def test_another_departments_token_is_refused_naming_both():
    token = feed_tokens.issue(ResumePoint("node-a", OTHER, 1, "k1"), KEYS["k1"])
    error = refused(token)
    assert error.reason == "other_department" and OTHER in str(error) and DEPT in str(error)


def test_another_nodes_token_is_refused_naming_it():
    token = feed_tokens.issue(ResumePoint("node-b", DEPT, 1, "k1"), KEYS["k1"])
    error = refused(token)
    assert error.reason == "other_node" and "node-b" in str(error)


def test_an_unknown_key_is_refused():
    token = feed_tokens.issue(ResumePoint("node-a", DEPT, 1, "k9"), b"z" * 32)
    assert refused(token).reason == "unknown_key"


@pytest.mark.parametrize("token", ["", "abc", "cw1.", "cw1.a.b", "cw1.!!.??", "cw1.a.b.c", "cw1." + "A" * 2000,
                                   "cw1." + base64.urlsafe_b64encode(b'{"n":"node-a","d":"x","p":-1,"k":"k1"}')
                                   .decode() + ".AA", "cw1." + base64.urlsafe_b64encode(b"[1]").decode() + ".AA"])
def test_malformed_tokens_are_refused(token: str):
    assert refused(token).reason == "malformed"


def test_tokens_made_before_a_key_rotation_still_verify(tmp_path: Path):
    store = KeyStore.create(tmp_path / "keys")
    old_kid = store.active.kid
    token = feed_tokens.issue(ResumePoint("node-a", DEPT, 7, old_kid), store.mac_key(feed_tokens.MAC_PURPOSE))
    rotated = store.rotate()
    assert rotated.active.kid != old_kid
    point = feed_tokens.check(token, node_id="node-a", department_code=DEPT,
                              mac_key=lambda kid: rotated.mac_key(feed_tokens.MAC_PURPOSE, kid))
    assert point.position == 7
    assert rotated.mac_key(feed_tokens.MAC_PURPOSE) != rotated.mac_key(feed_tokens.MAC_PURPOSE, old_kid)
    assert rotated.mac_key("another purpose") != rotated.mac_key(feed_tokens.MAC_PURPOSE)
    with pytest.raises(UnusableKey):
        rotated.mac_key(feed_tokens.MAC_PURPOSE, "no-such-kid")
