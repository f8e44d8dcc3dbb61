"""The reference responder of household checks (家庭经济状况核对): what a bank's or a department's
integrator starts from. It uses only the published message format
(``adapters/codecs/schemas/household-check.schema.json``), pika, an Ed25519 key, an X25519 key, HPKE
(pyhpke) and, for nodes of the national suite, SM2 and SM4 (gmssl-pyx, the binding the node itself uses), and
nothing of the node: it consumes ``exnode.<name>.rpc``, opens each request (sealed to its X25519 key,
``exnode-sealed/1``), looks each member up in a small dataset, and answers once to the request's
``reply_to`` with the same correlation id, signed with its key and sealed to the request's ``reply_key``
(X25519-HPKE, or SM2-SM4 from an SM2 node), acking the request after the answer was confirmed by the broker.
A request that is not sealed to it, or whose reply key it cannot seal to, is dropped unanswered (nothing is
ever answered in clear).

Dataset (JSON): ``{"members": {"<公民身份号码>": {"存款余额": 52000.0, …}}, "refuse": "", "delay_s": 0}`` — a
non-empty ``refuse`` answers every request REFUSED with that reason; ``delay_s`` waits that long before
answering (a slow platform, for drills).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
from pathlib import Path
from typing import Any

import gmssl_pyx
import pika
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pyhpke import AEADId, CipherSuite, KDFId, KEMId, KEMKey

log = logging.getLogger(__name__)
CONTENT_TYPE = "application/vnd.exnode.check+json"
REQUEST_CONTEXT = b"exnode-check/1\n"
ANSWER_CONTEXT = b"exnode-check-answer/1\n"
SEALED_FORMAT = "exnode-sealed/1"
HPKE = CipherSuite.new(KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.AES256_GCM)
HPKE_INFO = b"exnode relay v1"
EXPORT_CONTEXT = b"exnode message key"
SM2_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d03420004")
"""An SM2 (sm2p256v1) SubjectPublicKeyInfo is this prefix and the point's 64 bytes x ‖ y."""


def _kid(public: x25519.X25519PublicKey | ed25519.Ed25519PublicKey) -> str:
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    return digest.finalize().hex()[:16]


def _pem(public: x25519.X25519PublicKey | ed25519.Ed25519PublicKey) -> str:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_encryption_key(directory: Path) -> x25519.X25519PrivateKey:
    """The responder's X25519 key (made on first start): what requests to it are sealed to."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "responder-encryption.key.pem"
    if path.exists():
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(private, x25519.X25519PrivateKey), f"{path} is not an X25519 key"
        return private
    private = x25519.X25519PrivateKey.generate()
    path.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    path.chmod(0o600)
    return private


def _message_key(to: str, kid: str) -> tuple[bytes, bytes]:
    return HPKE_INFO + f"{SEALED_FORMAT} {to}".encode() + b"\x00" + kid.encode(), b"exnode message " + to.encode()


def open_sealed(body: bytes, me: str, private: x25519.X25519PrivateKey) -> bytes:
    """The signed message sealed to this responder (ValueError, KeyError or the library's error if not)."""
    sealed = json.loads(body)["sealed"]
    if sealed["format"] != SEALED_FORMAT or sealed["to"] != me or sealed["x-exnode-enc-alg"] != "X25519-HPKE":
        raise ValueError(f"not sealed to {me} with X25519-HPKE")
    info, aad = _message_key(me, str(sealed["x-exnode-enc-kid"]))
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    recipient = HPKE.create_recipient_context(bytes.fromhex(sealed["x-exnode-enc-key"]), KEMKey.from_pem(pem),
                                              info=info)
    raw = base64.b64decode(sealed["ciphertext"], validate=True)
    return AESGCM(recipient.export(EXPORT_CONTEXT, 32)).decrypt(raw[:12], raw[12:], aad)


def _sm2_point(public_pem: str) -> bytes:
    """The 64-byte point of an SM2 SubjectPublicKeyInfo PEM (ValueError if it is none)."""
    lines = public_pem.strip().splitlines()
    der = base64.b64decode("".join(lines[1:-1]), validate=True)
    if lines[0] != "-----BEGIN PUBLIC KEY-----" or len(der) != len(SM2_SPKI_PREFIX) + 64 \
            or not der.startswith(SM2_SPKI_PREFIX):
        raise ValueError("not an SM2 (sm2p256v1) public key")
    try:
        return gmssl_pyx.normalize_sm2_public_key(der[len(SM2_SPKI_PREFIX):])
    except gmssl_pyx.InvalidValueError:
        raise ValueError("the SM2 public key is not a point on sm2p256v1") from None


def seal(body: bytes, to: str, reply_key: dict[str, Any]) -> bytes:
    """``body`` sealed to the requester's ``reply_key``: X25519-HPKE, or SM2-SM4 (a fresh SM4 key wrapped by
    SM2 encryption, GM/T 0003.4, as GmSSL writes it; the body under SM4-GCM)."""
    algorithm, kid = reply_key.get("algorithm"), str(reply_key["kid"])
    info, aad = _message_key(to, kid)
    nonce = os.urandom(12)
    if algorithm == "X25519-HPKE":
        encapsulated, sender = HPKE.create_sender_context(KEMKey.from_pem(str(reply_key["public_pem"])), info=info)
        ciphertext = nonce + AESGCM(sender.export(EXPORT_CONTEXT, 32)).encrypt(nonce, body, aad)
    elif algorithm == "SM2-SM4":
        key = os.urandom(16)
        encapsulated = gmssl_pyx.sm2_encrypt(_sm2_point(str(reply_key["public_pem"])), key)
        encrypted, tag = gmssl_pyx.sm4_gcm_encrypt(key, nonce, aad, body)
        ciphertext = nonce + encrypted + tag
    else:
        raise ValueError(f"this responder seals to X25519-HPKE and SM2-SM4 keys, not {algorithm!r}")
    return json.dumps({"sealed": {"format": SEALED_FORMAT, "to": to, "x-exnode-enc-alg": algorithm,
                                  "x-exnode-enc-kid": kid, "x-exnode-enc-key": encapsulated.hex(),
                                  "ciphertext": base64.b64encode(ciphertext).decode()}}).encode()


def canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


def load_key(directory: Path, name: str) -> tuple[ed25519.Ed25519PrivateKey, str]:
    """The responder's key (created on first start) and its id; ``public-keys.json`` beside it is what the
    node's operator puts in the node's peers directory."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "responder.key.pem"
    if path.exists():
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(private, ed25519.Ed25519PrivateKey), f"{path} is not an Ed25519 key"
    else:
        private = ed25519.Ed25519PrivateKey.generate()
        path.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        path.chmod(0o600)
    der = private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    kid = digest.finalize().hex()[:16]
    pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    encryption = load_encryption_key(directory).public_key()
    (directory / "public-keys.json").write_text(json.dumps(
        {"node_id": name, "keys": [{"kid": kid, "algorithm": "Ed25519", "public_pem": pem, "created_at": ""}],
         "encryption": {"kid": _kid(encryption), "algorithm": "X25519-HPKE", "public_pem": _pem(encryption)}},
        indent=2) + "\n", encoding="utf-8")
    return private, kid


def answer_for(request: dict[str, Any], dataset: dict[str, Any], name: str) -> dict[str, Any]:
    refuse = str(dataset.get("refuse") or "")
    held = dataset.get("members", {})
    findings = [] if refuse else [{"id_number": m["id_number"], "items": held[m["id_number"]]}
                                  for m in request.get("members", []) if m.get("id_number") in held]
    return {"format": "exnode-check-answer/1", "check_id": str(request.get("check_id", "")), "target": name,
            "status": "REFUSED" if refuse else "ANSWERED", "reason": refuse, "findings": findings,
            "at": dt.datetime.now(dt.UTC).isoformat()}


def signed(answer: dict[str, Any], private: ed25519.Ed25519PrivateKey, kid: str) -> bytes:
    return json.dumps({"answer": answer, "kid": kid,
                       "signature": base64.b64encode(private.sign(ANSWER_CONTEXT + canonical(answer))).decode()},
                      ensure_ascii=False).encode()


class Responder:
    def __init__(self, url: str, name: str, dataset: dict[str, Any], key_dir: Path) -> None:
        self.url = url
        self.name = name
        self.dataset = dataset
        self.private, self.kid = load_key(key_dir, name)
        self.encryption = load_encryption_key(key_dir)
        self.answered = 0
        self._stop = False

    @property
    def queue(self) -> str:
        return f"exnode.{self.name}.rpc"

    def stop(self) -> None:
        self._stop = True

    def run(self) -> None:
        """Consume until ``stop``; a lost connection ends the run (restart it: unacked requests return)."""
        with pika.BlockingConnection(pika.URLParameters(self.url)) as connection:
            channel = connection.channel()
            channel.queue_declare(self.queue, durable=True, arguments={"x-queue-type": "quorum"})
            channel.confirm_delivery()
            channel.basic_qos(prefetch_count=8)
            channel.basic_consume(self.queue, on_message_callback=self._one)
            while not self._stop:
                connection.process_data_events(time_limit=0.2)

    def _one(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        try:
            request = json.loads(open_sealed(body, self.name, self.encryption))["request"]
            delay = float(self.dataset.get("delay_s") or 0)
            if delay:
                channel.connection.sleep(delay)  # keeps the connection's heartbeats going
            answer = signed(answer_for(request, self.dataset, self.name), self.private, self.kid)
            sealed = seal(answer, str(request.get("from", "")), request["reply_key"])
        except Exception as error:  # in clear, to another reader, tampered, no usable reply_key: never answered
            log.warning("not a check request sealed to %s with a reply key it can seal to (%s: %s); dropped",
                        self.name, type(error).__name__, error)
            channel.basic_ack(method.delivery_tag)
            return
        if properties.reply_to:
            channel.basic_publish("", properties.reply_to, sealed,
                                  pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent,
                                                       content_type=CONTENT_TYPE, app_id=self.name,
                                                       correlation_id=properties.correlation_id))
        channel.basic_ack(method.delivery_tag)
        self.answered += 1
