"""Resume tokens of the catalog feed (WatchCatalog): opaque to clients, checked by the node that issued them.

A token says "department D has received node N's catalog feed up to position P". It is bound to the
department and the node and MACed (HMAC-SHA256 with a key the node derives from its signing key, named by
its key id), so a client can neither forge a position, nor resume with another department's token, nor
take a token from one node to another: each is refused with its own reason. Tokens do not expire by
themselves; the bearer JWT that accompanies them does, and the feed ends when it does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass

from security.errors import SecurityError

PREFIX = "cw1."
MAC_PURPOSE = "catalog feed resume token v1"
MAX_TOKEN_CHARS = 1000


class TokenRefused(SecurityError):
    """A resume token this node will not honour. ``reason`` is a stable tag: malformed, other_node,
    forged, other_department, unknown_key."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


@dataclass(frozen=True)
class ResumePoint:
    node_id: str
    department_code: str
    position: int
    kid: str


MacKey = Callable[[str], bytes]
"""kid → MAC key; raises KeyError when the node has no such key."""


def b64(data: bytes) -> str:
    """URL-safe base64 without padding (the tokens' encoding; page tokens use it too)."""
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mac_of(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).digest()


def issue(point: ResumePoint, key: bytes) -> str:
    payload = json.dumps({"n": point.node_id, "d": point.department_code, "p": point.position, "k": point.kid},
                         separators=(",", ":"), sort_keys=True).encode()
    return PREFIX + b64(payload) + "." + b64(mac_of(key, payload))


def check(token: str, *, node_id: str, department_code: str, mac_key: MacKey) -> ResumePoint:
    """The resume point of a token issued by this node to this department, or TokenRefused saying why."""
    if len(token) > MAX_TOKEN_CHARS or not token.startswith(PREFIX) or token.count(".") != 2:
        raise TokenRefused("malformed", "is not a resume token of the catalog feed")
    encoded_payload, encoded_mac = token[len(PREFIX):].split(".")
    try:
        payload = unb64(encoded_payload)
        mac = unb64(encoded_mac)
        fields = json.loads(payload)
        point = ResumePoint(fields["n"], fields["d"], fields["p"], fields["k"])
    except (ValueError, binascii.Error, KeyError, TypeError):
        raise TokenRefused("malformed", "is not a resume token of the catalog feed") from None
    if not (isinstance(point.node_id, str) and isinstance(point.department_code, str) and isinstance(point.kid, str)
            and isinstance(point.position, int) and not isinstance(point.position, bool) and point.position >= 0):
        raise TokenRefused("malformed", "is not a resume token of the catalog feed")
    if point.node_id != node_id:
        raise TokenRefused("other_node", f"was issued by node {point.node_id!r}, not by this node ({node_id!r}); "
                                         "resume at the node you were watching, or start again without a token")
    try:
        key = mac_key(point.kid)
    except KeyError:
        raise TokenRefused("unknown_key", f"names key {point.kid!r}, which this node does not have") from None
    if not hmac.compare_digest(mac, mac_of(key, payload)):
        raise TokenRefused("forged", "does not carry this node's MAC (altered or forged)")
    if point.department_code != department_code:
        raise TokenRefused("other_department", f"was issued to department {point.department_code}, not to "
                                               f"{department_code or 'the caller'}; a department resumes its own feed")
    return point
