"""The node's signing keys. This is the only module that loads private key material (STYLE.md §6).

Layout of ``<data>/keys``: one PKCS#8 PEM file per private key (mode 0600) and ``keyring.json`` listing
every key id, its algorithm, its public key and which one is active. Rotation adds a key and keeps the
old ones, so signatures made before a rotation still verify.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

ALGORITHMS = ("Ed25519", "ECDSA-P256")
KEYRING = "keyring.json"


class KeyError_(Exception):
    """A key file is missing, unreadable or inconsistent; the message names the file."""


def key_id(public_der: bytes) -> str:
    """A stable id: the first 16 hex digits of SHA-256 over the SubjectPublicKeyInfo."""
    return hashlib.sha256(public_der).hexdigest()[:16]


def _public_der(public_key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True)
class PublicKey:
    kid: str
    algorithm: str
    public_pem: str
    created_at: str

    def verify(self, data: bytes, signature: bytes) -> bool:
        key = serialization.load_pem_public_key(self.public_pem.encode())
        try:
            if isinstance(key, ed25519.Ed25519PublicKey):
                key.verify(signature, data)
            elif isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
            else:
                return False
        except InvalidSignature:
            return False
        return True


class SigningKey:
    def __init__(self, kid: str, algorithm: str, private_key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        self.kid = kid
        self.algorithm = algorithm
        self._private_key = private_key

    def sign(self, data: bytes) -> bytes:
        if isinstance(self._private_key, ed25519.Ed25519PrivateKey):
            return self._private_key.sign(data)
        return self._private_key.sign(data, ec.ECDSA(hashes.SHA256()))


def _generate(algorithm: str) -> ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey:
    if algorithm == "Ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == "ECDSA-P256":
        return ec.generate_private_key(ec.SECP256R1())
    raise KeyError_(f"unknown signing algorithm {algorithm!r}; known: {', '.join(ALGORITHMS)}")


def _write_private(path: Path, pem: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)


class KeyStore:
    def __init__(self, directory: Path, active: SigningKey, public: dict[str, PublicKey]) -> None:
        self.directory = directory
        self.active = active
        self.public = public

    @classmethod
    def create(cls, directory: Path, algorithm: str = "Ed25519") -> KeyStore:
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        if (directory / KEYRING).exists():
            raise KeyError_(f"{directory / KEYRING} already exists; use `exnode keys rotate` for a new key")
        cls._add_key(directory, algorithm, {"active": "", "keys": []})
        return cls.load(directory)

    @staticmethod
    def _add_key(directory: Path, algorithm: str, ring: dict) -> str:
        private = _generate(algorithm)
        der = _public_der(private.public_key())
        kid = key_id(der)
        pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        _write_private(directory / f"node-{kid}.key.pem", pem)
        public_pem = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        ring["keys"].append({"kid": kid, "algorithm": algorithm, "public_pem": public_pem,
                             "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")})
        ring["active"] = kid
        tmp = directory / (KEYRING + ".tmp")
        tmp.write_text(json.dumps(ring, indent=2), encoding="utf-8")
        os.replace(tmp, directory / KEYRING)
        return kid

    @classmethod
    def load(cls, directory: Path) -> KeyStore:
        ring_path = directory / KEYRING
        try:
            ring = json.loads(ring_path.read_text(encoding="utf-8"))
            public = {k["kid"]: PublicKey(k["kid"], k["algorithm"], k["public_pem"], k["created_at"])
                      for k in ring["keys"]}
            active_kid = ring["active"]
        except FileNotFoundError:
            raise KeyError_(f"{ring_path} is missing; run `exnode init` to create the node's keys") from None
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise KeyError_(f"{ring_path} is unreadable or malformed: {error}") from None
        private_path = directory / f"node-{active_kid}.key.pem"
        try:
            private = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
        except FileNotFoundError:
            raise KeyError_(f"{private_path} (the active signing key) is missing") from None
        except (OSError, ValueError, TypeError) as error:
            raise KeyError_(f"{private_path} is unreadable: {error}") from None
        if not isinstance(private, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
            raise KeyError_(f"{private_path}: unsupported key type {type(private).__name__}")
        if key_id(_public_der(private.public_key())) != active_kid:
            raise KeyError_(f"{private_path} does not match key id {active_kid} in {ring_path}")
        return cls(directory, SigningKey(active_kid, public[active_kid].algorithm, private), public)

    def rotate(self, algorithm: str | None = None) -> KeyStore:
        ring = json.loads((self.directory / KEYRING).read_text(encoding="utf-8"))
        self._add_key(self.directory, algorithm or self.active.algorithm, ring)
        return KeyStore.load(self.directory)
