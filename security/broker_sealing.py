"""Sealed messages between nodes and platforms (``exnode-sealed/1``): what crosses RabbitMQ for routed
verifications, keyed queries and household checks is sealed to its one reader, so the broker, its
operators and anyone reading a queue see neither ID numbers nor names, claims, records or findings.

Sign, then seal: the signed message (unchanged: ``exnode-rpc/1``, ``exnode-check/1`` and their answers)
is the plaintext. A request is sealed to the answerer's encryption key (published beside its signing keys
in its ``public-keys.json``, ``"encryption"``); the signed request names the requester's own key
(``reply_key``) and the answer is sealed to it. The suites are the consumers' (``security.sealing``):
HPKE base mode X25519/HKDF-SHA256 exporting an AES-256-GCM key, or SM2 encryption of an SM4-GCM key. On the
wire (``adapters/codecs/schemas/household-check.schema.json``, ``sealedMessage``)::

    {"sealed": {"format": "exnode-sealed/1", "to": "<reader id>", "x-exnode-enc-alg": "X25519-HPKE",
                "x-exnode-enc-kid": "<reader's key id>", "x-exnode-enc-key": "<hex>", "ciphertext": "<base64>"}}

HPKE info = ``b"exnode relay v1" + b"exnode-sealed/1 <to>" + b"\\x00" + <kid>``; exported secret
``b"exnode message key"`` (32 bytes); ciphertext = 12-byte nonce ‖ AES-GCM(ciphertext ‖ tag) with AAD
``b"exnode message " + <to>``.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from security.errors import SecurityError
from security.keys import KeyStore, encryption_key
from security.sealing import (
    HEADER_ALGORITHM,
    HEADER_KEY,
    HEADER_KID,
    BadConsumerKey,
    ConsumerKey,
    ConsumerPrivateKey,
    parse_consumer_key,
    seal_to,
    sealing_context,
)
from security.secrecy import TamperedCiphertext

SEALED_FORMAT = "exnode-sealed/1"


class NotSealed(SecurityError):
    """A message that is not sealed to this reader (in clear, to another reader, or tampered with)."""


def _context(to: str, kid: str) -> str:
    return sealing_context(f"{SEALED_FORMAT} {to}", kid)


def is_sealed(body: bytes) -> bool:
    try:
        return isinstance(json.loads(body).get("sealed"), dict)
    except (ValueError, AttributeError):
        return False


def seal_message(body: bytes, to: str, key: ConsumerKey) -> bytes:
    """``body`` sealed to ``to``'s encryption key."""
    seal = seal_to(key, _context(to, key.kid))
    return json.dumps({"sealed": {"format": SEALED_FORMAT, "to": to, **seal.headers,
                                  "ciphertext": base64.b64encode(seal.seal(to, body)).decode()}}).encode()


def open_message(body: bytes, me: str, private: ConsumerPrivateKey) -> bytes:
    """The signed message inside; NotSealed saying why it is not one sealed to ``me``."""
    try:
        sealed = json.loads(body)["sealed"]
        to, ciphertext = str(sealed["to"]), base64.b64decode(sealed["ciphertext"], validate=True)
        headers = {h: str(sealed[h]) for h in (HEADER_ALGORITHM, HEADER_KID, HEADER_KEY)}
    except (ValueError, KeyError, TypeError) as error:
        raise NotSealed(f"not a sealed message ({SEALED_FORMAT}): {error}") from None
    if to != me:
        raise NotSealed(f"a message sealed to {to!r}, not to {me!r}")
    try:
        return private.open(headers, _context(to, headers[HEADER_KID]), to, ciphertext)
    except (BadConsumerKey, TamperedCiphertext) as error:
        raise NotSealed(str(error)) from None


def public_entry(private: ConsumerPrivateKey) -> dict[str, str]:
    """What ``public-keys.json`` publishes as ``"encryption"`` (and a request names as ``reply_key``)."""
    return {"kid": private.kid, "algorithm": private.algorithm, "public_pem": private.public_pem}


def parse_entry(entry: Any) -> ConsumerKey:
    """A published ``encryption`` entry or a request's ``reply_key``, checked; BadConsumerKey says why not."""
    if not isinstance(entry, dict):
        raise BadConsumerKey("not an encryption key entry ({kid, algorithm, public_pem})")
    return parse_consumer_key(str(entry.get("algorithm", "")), str(entry.get("public_pem", "")))


def node_key(store: KeyStore) -> ConsumerPrivateKey:
    """The node's encryption key pair (``KeyStore.encryption``), as what opens the messages sealed to it."""
    return ConsumerPrivateKey(*store.encryption)


def load_or_create(directory: Path, signing_algorithm: str = "Ed25519") -> ConsumerPrivateKey:
    """The encryption key pair kept in ``directory`` (made on first use), for a key directory without a
    keyring (tests' peers)."""
    return ConsumerPrivateKey(*encryption_key(directory, signing_algorithm))


class Sealing:
    """One node's side: seals to its peers' published keys or to a request's ``reply_key``, opens what
    was sealed to it. ``peers``: peer id → its published encryption key (``exchange.peers_dir``)."""

    def __init__(self, me: str, private: ConsumerPrivateKey, peers: dict[str, ConsumerKey]) -> None:
        self.me = me
        self.private = private
        self.peers = peers

    @property
    def reply_key(self) -> dict[str, str]:
        return public_entry(self.private)

    def to_peer(self, peer: str, body: bytes) -> bytes:
        key = self.peers.get(peer)
        if key is None:
            raise NotSealed(f"{peer} publishes no encryption key (\"encryption\" in its public-keys.json in the "
                            "peers directory): nothing is sent to it in clear")
        return seal_message(body, peer, key)

    def open(self, body: bytes) -> bytes:
        return open_message(body, self.me, self.private)


def load_peer_keys(documents: dict[str, Any]) -> dict[str, ConsumerKey]:
    """peer id → encryption key, from its public-keys.json documents (those without one are left out)."""
    out: dict[str, ConsumerKey] = {}
    for peer, document in documents.items():
        entry = document.get("encryption") if isinstance(document, dict) else None
        if entry:
            out[peer] = parse_entry(entry)
    return out
