"""The reference responder of household checks (家庭经济状况核对): what a bank's or a department's
integrator starts from. It uses only the published message format
(``adapters/codecs/schemas/household-check.schema.json``), pika and an Ed25519 key, and nothing of the
node: it consumes ``exnode.<name>.rpc``, looks each member up in a small dataset, and answers once to the
request's ``reply_to`` with the same correlation id, signed with its key, acking the request after the
answer was confirmed by the broker.

Dataset (JSON): ``{"members": {"<公民身份号码>": {"存款余额": 52000.0, …}}, "refuse": "", "delay_s": 0}`` — a
non-empty ``refuse`` answers every request REFUSED with that reason; ``delay_s`` waits that long before
answering (a slow platform, for drills).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import pika
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

log = logging.getLogger(__name__)
CONTENT_TYPE = "application/vnd.exnode.check+json"
REQUEST_CONTEXT = b"exnode-check/1\n"
ANSWER_CONTEXT = b"exnode-check-answer/1\n"


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
    (directory / "public-keys.json").write_text(json.dumps(
        {"node_id": name, "keys": [{"kid": kid, "algorithm": "Ed25519", "public_pem": pem, "created_at": ""}]},
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
            request = json.loads(body)["request"]
        except (ValueError, KeyError, TypeError):
            log.warning("not a check request; dropped")
            channel.basic_ack(method.delivery_tag)
            return
        delay = float(self.dataset.get("delay_s") or 0)
        if delay:
            channel.connection.sleep(delay)  # keeps the connection's heartbeats going
        if properties.reply_to:
            channel.basic_publish("", properties.reply_to, signed(answer_for(request, self.dataset, self.name),
                                                                  self.private, self.kid),
                                  pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent,
                                                       content_type=CONTENT_TYPE, app_id=self.name,
                                                       correlation_id=properties.correlation_id))
        channel.basic_ack(method.delivery_tag)
        self.answered += 1
