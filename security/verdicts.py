"""Signed verdicts of 核验 (claim verification): what the node answered, to whom, about which request,
when and with which key — evidence that a third party checks offline with the node's public keys
(``exnode verdict verify FILE --keys public-keys.json``), as the asking office keeps the answer and
its source (DOMAIN.md, 网络核验).

The node signs ``CONTEXT`` + the verdict's canonical JSON (sorted keys, compact, UTF-8). The verdict names
the request by its SHA-256 (``request_hash``) over the request's canonical JSON, so the verdict itself
carries no clear identifier; a verdict file may carry the request beside it, and the verifier then checks
that the hash is that request's.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from security.keys import PublicKey, SigningKey

CONTEXT = b"exnode-verdict/1\n"
FORMAT = "exnode-verdict/1"


def canonical(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


def request_document(*, resource_code: str, consumer_code: str, key: Mapping[str, str],
                     claims: Sequence[tuple[str, str]], request_id: str) -> dict[str, Any]:
    """The request as the verdict's hash covers it: resource, asking department, the key and the claims as
    the caller sent them, and the request id (so two equal questions get different verdicts)."""
    return {"resource": resource_code, "consumer": consumer_code, "key": dict(key),
            "claims": [{"item": item, "value": value} for item, value in claims], "request_id": request_id}


def request_hash(request: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(request)).hexdigest()


@dataclass(frozen=True)
class SignedVerdict:
    document: dict[str, Any]
    """format, node, kid, algorithm, at, request_id, request_hash, resource, consumer, grant, subject (the
    keyed hash of the key), answers [{item, result}], state (电子证照, or ""), disputed (校核纠错: the record answered from is under
    an open objection; verdicts of nodes before it lack the key)."""
    signature: bytes
    signed_bytes: bytes = field(default=b"", compare=False, repr=False)
    """``canonical(document)`` as signed, when this node signed it (``sign``): the response carries those
    very bytes, so they are not serialised a second time per verification."""

    def canonical_document(self) -> bytes:
        """The document's canonical JSON (what the signature covers after ``CONTEXT``)."""
        return self.signed_bytes or canonical(self.document)

    @property
    def digest(self) -> bytes:
        """What a trusted timestamp of the verdict covers (``security.timestamps.signed_digest``)."""
        return digest_of(self.document, self.signature)

    def file(self, request: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The verdict as a file: the signed document, its signature, and optionally the request."""
        out: dict[str, Any] = {"verdict": self.document, "signature": base64.b64encode(self.signature).decode()}
        if request is not None:
            out["request"] = dict(request)
        return out


def digest_of(document: Mapping[str, Any], signature: bytes) -> bytes:
    """SHA-256 of the signed message and the signature, as ``security.timestamps.signed_digest``."""
    return hashlib.sha256(CONTEXT + canonical(document) + signature).digest()


def sign(document: dict[str, Any], signer: SigningKey) -> SignedVerdict:
    body = {**document, "format": FORMAT, "kid": signer.kid, "algorithm": signer.algorithm}
    message = canonical(body)
    return SignedVerdict(body, signer.sign(CONTEXT + message), message)


def verify_file(data: Any, keys: Mapping[str, PublicKey], node_id: str = "") -> list[str]:
    """Every problem of a verdict file (empty: it verifies): its shape, the key, the signature, the node,
    and, when the file carries the request, that the verdict's hash is that request's."""
    if not isinstance(data, dict) or not isinstance(data.get("verdict"), dict):
        return ["not a verdict file: an object with 'verdict' and 'signature' is expected"]
    document = data["verdict"]
    if document.get("format") != FORMAT:
        return [f"verdict.format is {document.get('format')!r}, not {FORMAT!r}"]
    try:
        signature = base64.b64decode(str(data.get("signature", "")), validate=True)
    except ValueError:
        return ["signature: not base64"]
    problems = []
    kid = str(document.get("kid", ""))
    key = keys.get(kid)
    if key is None:
        problems.append(f"verdict.kid: {kid!r} is not among the node's public keys ({', '.join(sorted(keys))})")
    elif not key.verify(CONTEXT + canonical(document), signature):
        problems.append(f"signature: does not verify with key {kid} (the verdict was changed or not signed by it)")
    if node_id and document.get("node") != node_id:
        problems.append(f"verdict.node: {document.get('node')!r}, but the keys are node {node_id!r}'s")
    request = data.get("request")
    if request is not None and (not isinstance(request, dict) or request_hash(request) != document.get("request_hash")):
        problems.append("request: its SHA-256 is not the verdict's request_hash (the request was changed)")
    return problems
