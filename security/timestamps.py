"""Trusted time (RFC 3161): one time-stamp token covers many roots — batch Merkle roots, audit checkpoints,
pull manifests — through a Merkle root of those roots, as X-Road stamps its message log in batches.

Pure functions over bytes: the request for a root of roots, the check of the TSA's reply (status, the
nonce we sent — a replayed token carries another —, the message imprint, the signature and the TSA's
certificate chain up to the configured roots), and the same check offline on a stored reply. Tokens are
parsed and verified by rfc3161-client (Trail of Bits, on ``cryptography``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from rfc3161_client import (
    HashAlgorithm,
    PKIStatus,
    TimestampRequestBuilder,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)

from security.errors import SecurityError
from security.merkle import MerkleTree, leaf_hash, root_from_inclusion_proof

CONTENT_TYPE_QUERY = "application/timestamp-query"
CONTENT_TYPE_REPLY = "application/timestamp-reply"


class TimestampInvalid(SecurityError):
    """A time-stamp reply or stored token that does not prove what it should; the message names why."""


def signed_digest(message: bytes, signature: bytes) -> bytes:
    """What a timestamp of a signed statement (an audit checkpoint, a day's pull manifest) covers: SHA-256 of
    its signed message and signature, so the token proves the signed statement existed by then."""
    return hashlib.sha256(message + signature).digest()


def root_of_roots(roots: Sequence[bytes]) -> bytes:
    """The Merkle root (RFC 6962 hashing, security.merkle) over the covered roots, in their order."""
    if not roots:
        raise ValueError("a timestamp covers at least one root")
    return MerkleTree.from_leaves(list(roots)).root


@dataclass(frozen=True)
class Request:
    der: bytes
    nonce: int


def request_for(message: bytes) -> Request:
    """A TimeStampReq over SHA-256 of ``message`` with a fresh nonce, asking for the TSA's certificate."""
    request = (TimestampRequestBuilder().data(message).hash_algorithm(HashAlgorithm.SHA256)
               .nonce(nonce=True).cert_request(cert_request=True).build())
    return Request(request.as_bytes(), int(request.nonce or 0))


def load_roots(path: Path) -> list[x509.Certificate]:
    """The trusted TSA root certificates (PEM, one or more)."""
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError) as error:
        raise TimestampInvalid(f"{path}: not a PEM file of TSA root certificates: {error}") from None


def check(reply: bytes, message: bytes, roots: Sequence[x509.Certificate], nonce: int | None = None,
          what: str = "timestamp") -> dt.datetime:
    """The time the TSA vouches for; TimestampInvalid naming the first thing that does not hold: not a
    reply, not granted, another nonce (a replayed token), a token over other data, a signature or chain
    that does not lead to ``roots``."""
    try:
        response = decode_timestamp_response(reply)
    except ValueError as error:
        raise TimestampInvalid(f"{what}: not an RFC 3161 time-stamp reply: {error}") from None
    if response.status not in (PKIStatus.GRANTED, PKIStatus.GRANTED_WITH_MODS):
        raise TimestampInvalid(f"{what}: the TSA refused (status {response.status}: "
                               f"{'; '.join(response.status_string) or 'no reason given'})")
    info = response.tst_info
    if nonce is not None and info.nonce != nonce:
        raise TimestampInvalid(f"{what}: the token answers another request (nonce {info.nonce}, we sent {nonce}): "
                               "a replayed token")
    if info.message_imprint.message != hashlib.sha256(message).digest():
        raise TimestampInvalid(f"{what}: the token is over other data (its message imprint is not SHA-256 of the "
                               "covered roots)")
    if not roots:
        raise TimestampInvalid(f"{what}: no trusted TSA root certificate is configured")
    builder = VerifierBuilder()
    for root in roots:
        builder = builder.add_root_certificate(root)
    try:
        builder.build().verify_message(response, message)
    except VerificationError as error:
        raise TimestampInvalid(f"{what}: the token's signature or the TSA's certificate chain does not verify "
                               f"against the trusted roots: {error}") from None
    return info.gen_time


REPLAY_LEEWAY = dt.timedelta(minutes=5)
"""How much earlier than the statement it covers a token may be dated (clocks of the node and the TSA)."""


@dataclass(frozen=True)
class Evidence:
    """What a third party needs to check offline that a TSA vouched for one signed statement: the token
    (the TSA's whole reply, DER), and the RFC 6962 inclusion proof of the statement's digest (leaf
    ``index`` of ``size``) in the root of roots the token's message imprint covers."""

    kind: str
    ref: str
    digest: bytes
    index: int
    size: int
    proof: tuple[bytes, ...]
    token: bytes

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "ref": self.ref, "digest": self.digest.hex(), "index": self.index,
                "size": self.size, "proof": [p.hex() for p in self.proof],
                "token": base64.b64encode(self.token).decode("ascii")}

    @classmethod
    def from_dict(cls, data: object, what: str = "timestamp") -> Evidence:
        """TimestampInvalid naming the field when ``data`` is not evidence of this shape."""
        if not isinstance(data, dict):
            raise TimestampInvalid(f"{what}: not an object with kind, ref, digest, index, size, proof, token")
        try:
            proof = data["proof"]
            if not isinstance(proof, list):
                raise TypeError("proof is not a list")
            index, size = data["index"], data["size"]
            if not isinstance(index, int) or not isinstance(size, int) or isinstance(index, bool):
                raise TypeError("index and size are integers")
            return cls(str(data["kind"]), str(data["ref"]), bytes.fromhex(str(data["digest"])), index, size,
                       tuple(bytes.fromhex(str(p)) for p in proof),
                       base64.b64decode(str(data["token"]), validate=True))
        except (KeyError, TypeError, ValueError) as error:
            raise TimestampInvalid(f"{what}: malformed evidence ({type(error).__name__}: {error})") from None


def evidence_of(kind: str, ref: str, covered: Sequence[bytes], index: int, token: bytes) -> Evidence:
    """The evidence for ``covered[index]`` of a token over ``root_of_roots(covered)``."""
    tree = MerkleTree.from_leaves(list(covered))
    return Evidence(kind, ref, covered[index], index, tree.size, tuple(tree.inclusion_proof(index)), token)


def check_evidence(evidence: Evidence, digest: bytes, roots: Sequence[x509.Certificate],
                   not_before: dt.datetime | None = None, what: str = "timestamp") -> dt.datetime:
    """The time the TSA vouches for the statement whose ``digest`` (``signed_digest``) the caller computed
    from the statement itself; TimestampInvalid naming the first thing that does not hold: evidence for
    another statement, a proof that leads nowhere, the token checks of ``check`` (not a reply, the
    imprint, the signature and the TSA's chain to ``roots``), and a token dated before the statement was
    signed (``not_before``, less REPLAY_LEEWAY): a token replayed from an earlier stamp."""
    if evidence.digest != digest:
        raise TimestampInvalid(f"{what}: the evidence is for another statement (digest {evidence.digest.hex()[:16]}…, "
                               f"this one's is {digest.hex()[:16]}…)")
    try:
        message = root_from_inclusion_proof(leaf_hash(digest), evidence.index, evidence.size, evidence.proof)
    except ValueError as error:
        raise TimestampInvalid(f"{what}: the inclusion proof is malformed: {error}") from None
    gen_time = check(evidence.token, message, roots, what=what)
    if not_before is not None and gen_time < not_before - REPLAY_LEEWAY:
        raise TimestampInvalid(f"{what}: the token is dated {gen_time.isoformat()}, before the statement it stamps "
                               f"was signed ({not_before.isoformat()}): a replayed token")
    return gen_time
