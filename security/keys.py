"""The node's signing keys. This is the only module that loads private key material (STYLE.md §6).

Layout of ``<data>/keys``: one PKCS#8 PEM file per private key (mode 0600) and ``keyring.json`` listing
every key id, its algorithm, its public key (SubjectPublicKeyInfo PEM) and which one is active. Rotation
adds a key and keeps the old ones, so signatures made before a rotation still verify.

Suites: Ed25519 (default), ECDSA P-256 with SHA-256, and SM2-SM3 for national-cryptography (国密)
deployments — an SM2 signature (GM/T 0003.2-2012) over SM3 (GM/T 0004-2012) with the default signer id
of GM/T 0009-2012, DER-encoded as GM/T 0009 specifies. ``cryptography`` cannot load SM2 keys, so that suite
runs on gmssl-pyx (a C binding of GmSSL 3) and its key files use the same PKCS#8 and SubjectPublicKeyInfo
layouts OpenSSL and GmSSL write, so that other GM/T tools read them.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import gmssl_pyx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from security.errors import SecurityError
from security.secrecy import Cipher, cipher_for_suite, new_key

ALGORITHMS = ("Ed25519", "ECDSA-P256", "SM2-SM3")
KEYRING = "keyring.json"
KEK_RING = "kek.json"
"""The key-encryption keys (KEK) beside the keyring: ``{"active": id, "keys": [{kid, algorithm, created_at}]}``,
each key's bytes in ``kek-<kid>.key`` (mode 0600). They wrap the data keys that encrypt personal data at rest."""

SM2_SIGNER_ID = b"1234567812345678"
"""The default user id (ID_A) of GM/T 0009-2012 §10, which enters every SM2 signature through Z_A."""

# The fixed DER around SM2 key material on the recommended curve sm2p256v1 (OID 1.2.156.10197.1.301,
# under id-ecPublicKey), byte for byte what `openssl genpkey -algorithm SM2` writes. The layouts have no
# variable-length parts, so prefixes are all a parser needs.
_SM2_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d03420004")
_SM2_PKCS8_PREFIX = bytes.fromhex(
    "308187020100301306072a8648ce3d020106082a811ccf5501822d046d306b0201010420")
_SM2_PKCS8_PUBLIC = bytes.fromhex("a14403420004")


class UnusableKey(SecurityError):
    """A key file is missing, unreadable or inconsistent; the message names the file."""


def key_id(public_der: bytes) -> str:
    """A stable id: the first 16 hex digits of SHA-256 over the SubjectPublicKeyInfo."""
    return hashlib.sha256(public_der).hexdigest()[:16]


def pem(label: str, der: bytes) -> bytes:
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n".encode()


def unpem(label: str, text: bytes) -> bytes:
    lines = text.decode("ascii").strip().splitlines()
    if len(lines) < 3 or lines[0] != f"-----BEGIN {label}-----" or lines[-1] != f"-----END {label}-----":
        raise ValueError(f"not a PEM {label}")
    return base64.b64decode("".join(lines[1:-1]), validate=True)


def _sm2_point_from_spki(der: bytes) -> bytes:
    """The 64-byte x || y of an SM2 SubjectPublicKeyInfo, checked to be on the curve."""
    if len(der) != len(_SM2_SPKI_PREFIX) + 64 or not der.startswith(_SM2_SPKI_PREFIX):
        raise ValueError("not an SM2 (sm2p256v1) SubjectPublicKeyInfo")
    try:
        return gmssl_pyx.normalize_sm2_public_key(der[len(_SM2_SPKI_PREFIX):])
    except gmssl_pyx.InvalidValueError:
        raise ValueError("the SM2 public key is not a point on sm2p256v1") from None


def sm2_verify(public_point: bytes, data: bytes, signature: bytes) -> bool:
    """SM2 with SM3 and the default signer id; false for any malformed signature.

    GmSSL prints a line to stderr for each signature it rejects; that is the library, not an error here.
    """
    try:
        return gmssl_pyx.sm2_verify(public_point, data, signature, SM2_SIGNER_ID)
    except gmssl_pyx.GmsslInnerError:
        return False


class Sm2PrivateKey:
    """An SM2 key pair: gmssl-pyx works on raw bytes (a 32-byte scalar, a 64-byte point x || y)."""

    def __init__(self, private_scalar: bytes, public_point: bytes) -> None:
        self._private_scalar = private_scalar
        self.public_point = public_point

    @classmethod
    def generate(cls) -> Sm2PrivateKey:
        public_point, private_scalar = gmssl_pyx.sm2_key_generate()
        return cls(private_scalar, public_point)

    @classmethod
    def from_pkcs8(cls, der: bytes) -> Sm2PrivateKey:
        """Read the PKCS#8 layout OpenSSL writes; gmssl-pyx cannot derive the public key, so the pair is
        proven to match by signing and verifying once."""
        scalar_end = len(_SM2_PKCS8_PREFIX) + 32
        if (len(der) != scalar_end + len(_SM2_PKCS8_PUBLIC) + 64 or not der.startswith(_SM2_PKCS8_PREFIX)
                or der[scalar_end:scalar_end + len(_SM2_PKCS8_PUBLIC)] != _SM2_PKCS8_PUBLIC):
            raise ValueError("not an SM2 (sm2p256v1) PKCS#8 private key with its public key")
        key = cls(der[len(_SM2_PKCS8_PREFIX):scalar_end], der[-64:])
        probe = b"exnode SM2 key pair check"
        try:
            matches = sm2_verify(key.public_point, probe, key.sign(probe))
        except gmssl_pyx.GmsslInnerError as error:
            raise ValueError(f"invalid SM2 key: {error}") from None
        if not matches:
            raise ValueError("the SM2 private key does not match the public key stored with it")
        return key

    def pkcs8(self) -> bytes:
        return _SM2_PKCS8_PREFIX + self._private_scalar + _SM2_PKCS8_PUBLIC + self.public_point

    def public_der(self) -> bytes:
        return _SM2_SPKI_PREFIX + self.public_point

    def sign(self, data: bytes) -> bytes:
        """DER SEQUENCE {r, s} (GM/T 0009); GmSSL draws a fresh k from getentropy() for each signature."""
        return gmssl_pyx.sm2_sign(self._private_scalar, self.public_point, data, SM2_SIGNER_ID)


PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | Sm2PrivateKey


def _public_der(private: PrivateKey) -> bytes:
    if isinstance(private, Sm2PrivateKey):
        return private.public_der()
    return private.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)


def _private_pem(private: PrivateKey) -> bytes:
    if isinstance(private, Sm2PrivateKey):
        return pem("PRIVATE KEY", private.pkcs8())
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())


def _load_private(pem: bytes, algorithm: str) -> PrivateKey:
    """Raises ValueError when the file does not hold a key of ``algorithm``."""
    if algorithm == "SM2-SM3":
        return Sm2PrivateKey.from_pkcs8(unpem("PRIVATE KEY", pem))
    private = serialization.load_pem_private_key(pem, password=None)
    if algorithm == "Ed25519" and isinstance(private, ed25519.Ed25519PrivateKey):
        return private
    if (algorithm == "ECDSA-P256" and isinstance(private, ec.EllipticCurvePrivateKey)
            and isinstance(private.curve, ec.SECP256R1)):
        return private
    raise ValueError(f"holds a {type(private).__name__}, not an {algorithm} key")


@dataclass(frozen=True)
class PublicKey:
    kid: str
    algorithm: str
    public_pem: str
    created_at: str

    @cached_property
    def _key(self) -> ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | bytes:
        """Parsed once per keyring entry, since verification is on the hot path (DESIGN.md §12)."""
        try:
            if self.algorithm == "SM2-SM3":
                return _sm2_point_from_spki(unpem("PUBLIC KEY", self.public_pem.encode()))
            key = serialization.load_pem_public_key(self.public_pem.encode())
        except ValueError as error:
            raise UnusableKey(f"public key {self.kid} ({self.algorithm}) is unreadable: {error}") from None
        if self.algorithm == "Ed25519" and isinstance(key, ed25519.Ed25519PublicKey):
            return key
        if (self.algorithm == "ECDSA-P256" and isinstance(key, ec.EllipticCurvePublicKey)
                and isinstance(key.curve, ec.SECP256R1)):
            return key
        raise UnusableKey(f"public key {self.kid} is a {type(key).__name__}, not an {self.algorithm} key")

    def verify(self, data: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's over ``data``; raises UnusableKey only if the key itself is bad."""
        key = self._key
        if isinstance(key, bytes):
            return sm2_verify(key, data, signature)
        try:
            if isinstance(key, ed25519.Ed25519PublicKey):
                key.verify(signature, data)
            else:
                key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True


class SigningKey:
    def __init__(self, kid: str, algorithm: str, private_key: PrivateKey) -> None:
        self.kid = kid
        self.algorithm = algorithm
        self._private_key = private_key

    def sign(self, data: bytes) -> bytes:
        if isinstance(self._private_key, ed25519.Ed25519PrivateKey | Sm2PrivateKey):
            return self._private_key.sign(data)
        return self._private_key.sign(data, ec.ECDSA(hashes.SHA256()))


def _generate(algorithm: str) -> PrivateKey:
    if algorithm == "Ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == "ECDSA-P256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "SM2-SM3":
        return Sm2PrivateKey.generate()
    raise UnusableKey(f"unknown signing algorithm {algorithm!r}; known: {', '.join(ALGORITHMS)}")


def _write_private(path: Path, pem: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)


@dataclass(frozen=True)
class MacKeys:
    """What a service that MACs its own tokens needs of the node's keys (``KeyStore.mac_keys``): the
    derived key by purpose and key id, and the active key's id — never the private keys themselves."""

    active_kid: str
    derive: Callable[[str, str], bytes]
    """(purpose, kid or "" for the active key) → 32 bytes; UnusableKey when kid is not a key of this node."""

    def key(self, purpose: str, kid: str = "") -> bytes:
        return self.derive(purpose, kid)


@dataclass(frozen=True)
class KeyEncryptionKey:
    """A key-encryption key: it wraps data keys (``security.secrecy.wrap``) and never touches records."""

    kid: str
    algorithm: str
    created_at: str
    cipher: Cipher = field(repr=False)


def _add_kek(directory: Path, algorithm: str) -> str:
    """A new random KEK, made the active one; the ones before stay to unwrap what they wrapped."""
    ring_path = directory / KEK_RING
    ring = json.loads(ring_path.read_text(encoding="utf-8")) if ring_path.exists() else {"active": "", "keys": []}
    material = new_key(algorithm)
    kid = hashlib.sha256(b"exnode kek " + material).hexdigest()[:16]
    _write_private(directory / f"kek-{kid}.key", base64.b64encode(material) + b"\n")
    ring["keys"].append({"kid": kid, "algorithm": algorithm,
                         "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")})
    ring["active"] = kid
    tmp = directory / (KEK_RING + ".tmp")
    tmp.write_text(json.dumps(ring, indent=2), encoding="utf-8")
    os.replace(tmp, ring_path)
    return kid


def _load_keks(directory: Path) -> tuple[str, dict[str, KeyEncryptionKey]]:
    """The active KEK's id and every KEK whose file is present; UnusableKey naming the file when the
    ring or the active key's file is missing or unreadable."""
    ring_path = directory / KEK_RING
    try:
        ring = json.loads(ring_path.read_text(encoding="utf-8"))
        entries = {k["kid"]: k for k in ring["keys"]}
        active = ring["active"]
        entries[active]
    except FileNotFoundError:
        raise UnusableKey(f"{ring_path} (the key-encryption keys) is missing; run `exnode init` to create it, "
                          "or restore the node's keys") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UnusableKey(f"{ring_path} is unreadable or malformed: {error!r}") from None
    keks: dict[str, KeyEncryptionKey] = {}
    for kid, entry in entries.items():
        path = directory / f"kek-{kid}.key"
        try:
            material = base64.b64decode(path.read_bytes().strip(), validate=True)
            keks[kid] = KeyEncryptionKey(kid, entry["algorithm"], entry.get("created_at", ""),
                                         Cipher(entry["algorithm"], material))
        except FileNotFoundError:
            if kid == active:
                raise UnusableKey(f"{path} (the active key-encryption key) is missing: the node cannot read "
                                  "its encrypted data without it; restore it from where the keys are kept") from None
        except (OSError, ValueError, KeyError, SecurityError) as error:
            raise UnusableKey(f"{path} is unreadable: {error}") from None
    return active, keks


class KeyStore:
    def __init__(self, directory: Path, active: SigningKey, public: dict[str, PublicKey],
                 kek_active: str = "", keks: dict[str, KeyEncryptionKey] | None = None) -> None:
        self.directory = directory
        self.active = active
        self.public = public
        self.kek_active = kek_active
        self.keks = keks or {}

    @property
    def kek(self) -> KeyEncryptionKey:
        """The active key-encryption key: new data keys are wrapped by it."""
        return self.keks[self.kek_active]

    @property
    def data_cipher(self) -> str:
        """The cipher of data at rest and of keyed hashes, by the node's suite."""
        return cipher_for_suite(self.active.algorithm)

    def rotate_kek(self) -> KeyStore:
        """A new active KEK (``exnode keys rotate-data``); the caller re-wraps the data keys with it."""
        _add_kek(self.directory, self.data_cipher)
        return KeyStore.load(self.directory)

    @classmethod
    def create(cls, directory: Path, algorithm: str = "Ed25519") -> KeyStore:
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        if (directory / KEYRING).exists():
            raise UnusableKey(f"{directory / KEYRING} already exists; use `exnode keys rotate` for a new key")
        cls._add_key(directory, algorithm, {"active": "", "keys": []})
        if not (directory / KEK_RING).exists():
            _add_kek(directory, cipher_for_suite(algorithm))
        return cls.load(directory)

    @staticmethod
    def ensure_kek(directory: Path) -> str | None:
        """Create the KEK of a node made before encryption at rest (``exnode init``); the new id, or None
        when there is one already."""
        if (directory / KEK_RING).exists():
            return None
        ring = json.loads((directory / KEYRING).read_text(encoding="utf-8"))
        algorithm = {k["kid"]: k["algorithm"] for k in ring["keys"]}[ring["active"]]
        return _add_kek(directory, cipher_for_suite(algorithm))

    @staticmethod
    def _add_key(directory: Path, algorithm: str, ring: dict) -> str:
        private = _generate(algorithm)
        der = _public_der(private)
        kid = key_id(der)
        _write_private(directory / f"node-{kid}.key.pem", _private_pem(private))
        ring["keys"].append({"kid": kid, "algorithm": algorithm, "public_pem": pem("PUBLIC KEY", der).decode(),
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
            algorithm = public[active_kid].algorithm
        except FileNotFoundError:
            raise UnusableKey(f"{ring_path} is missing; run `exnode init` to create the node's keys") from None
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise UnusableKey(f"{ring_path} is unreadable or malformed: {error!r}") from None
        private_path = directory / f"node-{active_kid}.key.pem"
        try:
            private = _load_private(private_path.read_bytes(), algorithm)
        except FileNotFoundError:
            raise UnusableKey(f"{private_path} (the active signing key) is missing") from None
        except (OSError, ValueError, TypeError) as error:
            raise UnusableKey(f"{private_path} is unreadable: {error}") from None
        if key_id(_public_der(private)) != active_kid:
            raise UnusableKey(f"{private_path} does not match key id {active_kid} in {ring_path}")
        kek_active, keks = _load_keks(directory)
        return cls(directory, SigningKey(active_kid, algorithm, private), public, kek_active, keks)

    @property
    def encryption(self) -> tuple[str, bytes]:
        """The node's encryption key pair (algorithm, PKCS#8 PEM; ``security.broker_sealing``), made on first use."""
        cached = getattr(self, "_encryption", None)
        if cached is None:
            cached = self._encryption = encryption_key(self.directory, self.active.algorithm)
        return cached

    def mac_keys(self) -> MacKeys:
        return MacKeys(self.active.kid, self.mac_key)

    def mac_key(self, purpose: str, kid: str = "") -> bytes:
        """A symmetric key for values only this node issues and checks (the catalog feed's resume tokens),
        derived with HKDF-SHA256 from the private key ``kid`` (default: the active one) and ``purpose``.

        Why derived rather than a key file of its own: nothing new to create, back up or rotate; a MAC
        costs a microsecond where a signature per streamed event would cost tens. Keys of earlier
        rotations are read from their files when asked for, so tokens issued before a rotation still
        verify. Raises UnusableKey when ``kid`` is not a key of this node."""
        kid = kid or self.active.kid
        cache = self.__dict__.setdefault("_mac_keys", {})
        if (kid, purpose) not in cache:
            if kid == self.active.kid:
                private: PrivateKey = self.active._private_key
            elif kid in self.public:
                try:
                    private = _load_private((self.directory / f"node-{kid}.key.pem").read_bytes(),
                                            self.public[kid].algorithm)
                except (OSError, ValueError) as error:
                    raise UnusableKey(f"the private key {kid} is not available: {error}") from None
            else:
                raise UnusableKey(f"{kid} is not a key of this node")
            hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"exnode mac: {purpose}".encode())
            cache[(kid, purpose)] = hkdf.derive(_private_pem(private))
        return cache[(kid, purpose)]

    def rotate(self, algorithm: str | None = None) -> KeyStore:
        ring = json.loads((self.directory / KEYRING).read_text(encoding="utf-8"))
        self._add_key(self.directory, algorithm or self.active.algorithm, ring)
        return KeyStore.load(self.directory)


PUBLIC_KEYS_FILE = "public-keys.json"
"""The node's published public keys, beside the keyring; what others use to verify its signatures."""


ENCRYPTION_KEY_FILE = "encryption-key.json"
"""The node's encryption key pair in its keys directory (mode 600): what requests to it over the broker are
sealed to (``security.broker_sealing``)."""
HPKE_X25519, SM2_SM4 = "X25519-HPKE", "SM2-SM4"


def encryption_key(directory: Path, signing_algorithm: str = "Ed25519") -> tuple[str, bytes]:
    """(algorithm, private PEM) of the node's encryption key, made on first use: SM2-SM4 for the national
    suite, else X25519 for HPKE. Another process making it meanwhile wins: its key is the node's."""
    path = directory / ENCRYPTION_KEY_FILE
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        return str(stored["algorithm"]), str(stored["private_pem"]).encode()
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UnusableKey(f"{path} is unreadable or malformed: {error}") from None
    if signing_algorithm.startswith("SM2"):
        algorithm, private_pem = SM2_SM4, pem("PRIVATE KEY", Sm2PrivateKey.generate().pkcs8())
    else:
        algorithm, private_pem = HPKE_X25519, x25519.X25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    directory.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump({"algorithm": algorithm, "private_pem": private_pem.decode()}, out)
    try:
        os.link(tmp, path)  # never replaces the one another process made meanwhile
    except FileExistsError:
        return encryption_key(directory, signing_algorithm)
    finally:
        os.unlink(tmp)
    return algorithm, private_pem


def encryption_public(algorithm: str, private_pem: bytes) -> dict[str, str]:
    """What ``public-keys.json`` publishes as ``"encryption"``: kid, algorithm, SubjectPublicKeyInfo PEM."""
    if algorithm == SM2_SM4:
        der = Sm2PrivateKey.from_pkcs8(unpem("PRIVATE KEY", private_pem)).public_der()
    else:
        private = serialization.load_pem_private_key(private_pem, password=None)
        if not isinstance(private, x25519.X25519PrivateKey):
            raise UnusableKey(f"an {algorithm} encryption key that is no X25519 key")
        der = private.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    return {"kid": key_id(der), "algorithm": algorithm, "public_pem": pem("PUBLIC KEY", der).decode()}


def public_keys_document(store: KeyStore, node_id: str) -> dict:
    """The signing keys, and the encryption key what is sent to the node over the broker is sealed to."""
    return {"node_id": node_id, "keys": [
        {"kid": k.kid, "algorithm": k.algorithm, "public_pem": k.public_pem, "created_at": k.created_at,
         "active": k.kid == store.active.kid}
        for k in store.public.values()], "encryption": encryption_public(*store.encryption)}


def write_public_keys(store: KeyStore, node_id: str) -> Path:
    """Write ``keys/public-keys.json`` (readable by anyone; it holds no secret)."""
    path = store.directory / PUBLIC_KEYS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(public_keys_document(store, node_id), ensure_ascii=False, indent=2) + "\n",
                   encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_public_keys(path: Path) -> dict[str, PublicKey]:
    """Trusted public keys from a published keys file (or a keyring.json): kid → key."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        entries = document["keys"]
        if isinstance(entries, dict):  # keyring.json keeps them by kid
            entries = [{"kid": kid, **value} for kid, value in entries.items()]
        return {e["kid"]: PublicKey(e["kid"], e["algorithm"], e["public_pem"], e.get("created_at", ""))
                for e in entries}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UnusableKey(f"{path}: not a public keys file: {error}") from None


def parse_public_key(algorithm: str, public_pem: str) -> PublicKey:
    """A department's public key as registered with the node: checked to be a key of the stated
    algorithm, with its id derived like the node's own (SHA-256 of the SubjectPublicKeyInfo)."""
    if algorithm not in ALGORITHMS:
        raise UnusableKey(f"unknown algorithm {algorithm!r}; known: {', '.join(ALGORITHMS)}")
    try:
        der = unpem("PUBLIC KEY", public_pem.encode())
    except (ValueError, UnusableKey) as error:
        raise UnusableKey(f"not a PEM public key: {error}") from None
    key = PublicKey(key_id(der), algorithm, public_pem, "")
    _ = key._key  # parses, or raises UnusableKey naming what is wrong
    return key


PROVIDER_KEY_FILE = "provider-key.pem"
PROVIDER_KEY_INFO = "provider-key.json"
"""A data provider's signing key (``exnode records keygen``): the private key in PEM (mode 0600), and
beside it its key id, algorithm and public key — what ``exnode records register`` sends to the node."""


def create_provider_key(directory: Path, algorithm: str = "Ed25519") -> tuple[SigningKey, str]:
    """A new provider key in ``directory``; never overwrites one (its records' signatures depend on it)."""
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / PROVIDER_KEY_FILE).exists():
        raise UnusableKey(f"{directory / PROVIDER_KEY_FILE} exists: a provider keeps its key (use another directory)")
    private = _generate(algorithm)
    public_der = _public_der(private)
    kid, public_pem = key_id(public_der), pem("PUBLIC KEY", public_der).decode()
    _write_private(directory / PROVIDER_KEY_FILE, _private_pem(private))
    (directory / PROVIDER_KEY_INFO).write_text(json.dumps({"kid": kid, "algorithm": algorithm,
                                                           "public_pem": public_pem}, indent=2), encoding="utf-8")
    return SigningKey(kid, algorithm, private), public_pem


def load_provider_key(directory: Path) -> tuple[SigningKey, str]:
    """The provider key of ``directory`` and its public PEM; UnusableKey naming the file otherwise."""
    try:
        info = json.loads((directory / PROVIDER_KEY_INFO).read_text(encoding="utf-8"))
        algorithm, public_pem = info["algorithm"], info["public_pem"]
        private = _load_private((directory / PROVIDER_KEY_FILE).read_bytes(), algorithm)
    except FileNotFoundError as error:
        raise UnusableKey(f"{error.filename} is missing: make the key with `exnode records keygen --key-dir "
                          f"{directory}`") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UnusableKey(f"the provider key in {directory} is unreadable: {error}") from None
    public_der = _public_der(private)
    if pem("PUBLIC KEY", public_der).decode() != public_pem:
        raise UnusableKey(f"{directory / PROVIDER_KEY_INFO} does not describe {directory / PROVIDER_KEY_FILE}")
    return SigningKey(key_id(public_der), algorithm, private), public_pem
