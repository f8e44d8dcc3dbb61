"""Keyed hashes of record keys (HMAC-SHA256 with a node secret): what the current-record index holds
and what audit entries name, so neither ever carries a clear identifier (公民身份号码, 证字号 …).

Why keyed and not a plain hash: an ID number has too little entropy (region, birth date, a sequence);
anybody could hash every candidate and read a plain SHA-256 back. With the node's secret, only the node
can compute the hash of a candidate key.
"""

from __future__ import annotations

import hashlib
import hmac

INDEX_PURPOSE = "record-key-index/v1"
"""The purpose the node's secret for the index is derived for (``KeyStore.mac_key``)."""


class KeyHasher:
    """HMAC-SHA256 of a key's canonical text (``catalog.claims.key_text``), hex."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the index secret needs at least 16 bytes")
        self._secret = secret

    def __call__(self, key_text: str) -> str:
        return hmac.new(self._secret, key_text.encode("utf-8"), hashlib.sha256).hexdigest()
