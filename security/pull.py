"""The nightly pull's signed statements and cursors (夜间拉取): pure functions, no keys loaded here.

A pull batch is signed once over the Merkle root of its records (their canonical forms, the same leaves
as a relay envelope) together with where it sits in the pull (node, platform, index, the cursors before
and after it, the record count), so a client can prove both that each batch is intact and that the
batches it holds follow one another without a hole. The manifest signs the whole pull's range, count and
the root over all its records.

A cursor is opaque to clients but not secret: a position in the node's stored-records order, the node and
the platform it was issued to, and an HMAC with the node's cursor secret. The node and platform are
readable so that a refusal can say whose cursor it was; the MAC makes a forged or altered cursor fail.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

from security.errors import SecurityError
from security.merkle import HASH_SIZE

CURSOR_PREFIX = "pc1."
_CURSOR_CONTEXT = b"exnode pull cursor v1\n"
_BATCH_CONTEXT = b"exnode pull batch v1\n"
_MANIFEST_CONTEXT = b"exnode pull manifest v1\n"
_MANIFEST_CONTEXT_V2 = b"exnode pull manifest v2\n"
MANIFEST_VERSION = 2
"""Version 2 signs the manifest's signing time too (version 1, without it, still verifies)."""
_MAC_SIZE = 16
_MAX_NAME = 128


class CursorError(SecurityError, ValueError):
    """A cursor that this node cannot honour for this platform. ``kind`` says why: ``malformed``,
    ``other_node``, ``forged`` (the MAC does not verify) or ``other_platform``."""

    def __init__(self, kind: str, reason: str) -> None:
        self.kind = kind
        super().__init__(reason)


@dataclass(frozen=True)
class Cursor:
    node_id: str
    platform: str
    position: int


def _name(value: str) -> bytes:
    raw = value.encode("utf-8")
    if not 0 < len(raw) <= _MAX_NAME:
        raise ValueError(f"{value!r} is not a node or platform name of 1-{_MAX_NAME} bytes")
    return bytes([len(raw)]) + raw


class CursorCodec:
    """Issues and checks the cursors of one node (the secret is the node's, kept in its database)."""

    def __init__(self, secret: bytes, node_id: str) -> None:
        if len(secret) < 16:
            raise ValueError("the cursor secret must be at least 16 bytes")
        self._secret = secret
        self.node_id = node_id

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._secret, _CURSOR_CONTEXT + body, hashlib.sha256).digest()[:_MAC_SIZE]

    def issue(self, platform: str, position: int) -> str:
        if not 0 <= position < 1 << 63:
            raise ValueError(f"position {position} out of range")
        body = position.to_bytes(8, "big") + _name(self.node_id) + _name(platform)
        return CURSOR_PREFIX + base64.urlsafe_b64encode(body + self._mac(body)).decode().rstrip("=")

    def read(self, platform: str, text: str) -> int:
        """The position the cursor stands for, after checking it is this node's and this platform's."""
        cursor, body, mac = parse(text)
        if cursor.node_id != self.node_id:
            raise CursorError("other_node", f"was issued by node {cursor.node_id!r}, this is node {self.node_id!r}")
        if not hmac.compare_digest(mac, self._mac(body)):
            raise CursorError("forged", "does not verify: it was altered or not issued by this node")
        if cursor.platform != platform:
            raise CursorError("other_platform", f"belongs to platform {cursor.platform!r}, not to {platform!r}")
        return cursor.position


def parse(text: str) -> tuple[Cursor, bytes, bytes]:
    """Split a cursor into its readable parts, the MACed body and the MAC (nothing is verified here)."""
    if not isinstance(text, str) or not text.startswith(CURSOR_PREFIX) or len(text) > 512:
        raise CursorError("malformed", f"is not a pull cursor (they start with {CURSOR_PREFIX!r})")
    encoded = text[len(CURSOR_PREFIX):]
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        raise CursorError("malformed", "is not valid base64url") from None
    try:
        position = int.from_bytes(raw[:8], "big")
        node_length = raw[8]
        node = raw[9:9 + node_length].decode("utf-8")
        offset = 9 + node_length
        platform_length = raw[offset]
        platform = raw[offset + 1:offset + 1 + platform_length].decode("utf-8")
        end = offset + 1 + platform_length
    except (IndexError, UnicodeDecodeError):
        raise CursorError("malformed", "is truncated or garbled") from None
    if len(raw) != end + _MAC_SIZE or len(node.encode()) != node_length or len(platform.encode()) != platform_length:
        raise CursorError("malformed", "is truncated or garbled")
    return Cursor(node, platform, position), raw[:end], raw[end:]


def _text(value: str) -> bytes:
    raw = value.encode("utf-8")
    return len(raw).to_bytes(4, "big") + raw


def _root(root: bytes) -> bytes:
    if len(root) != HASH_SIZE:
        raise ValueError(f"root is {len(root)} bytes; a SHA-256 hash is {HASH_SIZE}")
    return root


def batch_signing_input(*, node_id: str, platform: str, index: int, from_cursor: str, to_cursor: str,
                        record_count: int, root: bytes) -> bytes:
    """What the node signs for one pull batch (length-prefixed fields, so none can bleed into another)."""
    return (_BATCH_CONTEXT + _text(node_id) + _text(platform) + index.to_bytes(8, "big") + _text(from_cursor)
            + _text(to_cursor) + record_count.to_bytes(8, "big") + _root(root))


def manifest_signing_input(*, node_id: str, platform: str, from_cursor: str, to_cursor: str, record_count: int,
                           batch_count: int, root: bytes, until_day: str, signed_at: str = "") -> bytes:
    """What the node signs for a pull's manifest: its range, counts, the root over all records and (version
    2, ``signed_at`` given: an ISO 8601 UTC time) when it signed it, so that a manifest or a timestamp token
    replayed from an earlier pull of the same range is told by its date. Version 1 (no ``signed_at``) is
    what manifests signed before carry; the context string differs, so neither passes for the other."""
    body = (_text(node_id) + _text(platform) + _text(from_cursor) + _text(to_cursor) + record_count.to_bytes(8, "big")
            + batch_count.to_bytes(8, "big") + _root(root) + _text(until_day))
    if not signed_at:
        return _MANIFEST_CONTEXT + body
    return _MANIFEST_CONTEXT_V2 + body + _text(signed_at)
