"""Page tokens of list calls: opaque to clients, MACed like the catalog feed's resume tokens.

Why: an unsigned token (base64 JSON) let a client edit the position or the total it carries, and the
node took them as its own. A token is ``<prefix><payload>.<mac>``: the payload is compact JSON naming
the MAC key id, the MAC is HMAC-SHA256 with a key derived for the token's purpose (``KeyStore.mac_key``,
so keys of earlier rotations still verify). Anything altered, truncated or made up is refused.
"""

from __future__ import annotations

import binascii
import hmac
import json
from collections.abc import Callable

from security.errors import SecurityError
from security.feed_tokens import b64, mac_of, unb64

MAX_TOKEN_CHARS = 2000


class PageTokenRefused(SecurityError):
    """A page token this node did not issue (or one altered since); the message says which."""


def issue(prefix: str, fields: dict, key: bytes, kid: str) -> str:
    payload = json.dumps({**fields, "k": kid}, separators=(",", ":"), sort_keys=True,
                         ensure_ascii=False).encode()
    return prefix + b64(payload) + "." + b64(mac_of(key, payload))


def check(prefix: str, token: str, mac_key: Callable[[str], bytes]) -> dict:
    """The fields of a token this node issued with ``prefix``; PageTokenRefused otherwise.
    ``mac_key`` maps a key id to its MAC key and raises KeyError for a key the node does not have."""
    if len(token) > MAX_TOKEN_CHARS or not token.startswith(prefix) or token.count(".") != 2:
        raise PageTokenRefused("is not a page token this node issued")
    encoded_payload, encoded_mac = token[len(prefix):].split(".")
    try:
        payload, mac = unb64(encoded_payload), unb64(encoded_mac)
        fields = json.loads(payload)
        kid = fields.pop("k")
        if not isinstance(kid, str):
            raise TypeError
        key = mac_key(kid)
    except (ValueError, binascii.Error, KeyError, TypeError, AttributeError):
        raise PageTokenRefused("is not a page token this node issued") from None
    if not hmac.compare_digest(mac, mac_of(key, payload)):
        raise PageTokenRefused("does not carry this node's MAC (altered or forged)")
    return fields
