"""The reference consumer (参考消费端): what a consumer department runs to read the messages a node relays to
it — open a message sealed to its encryption key (``security.sealing``), decode it in its platform's
format, and verify the node's signature over the record. Tests and ``exnode consumer read`` use it, and it
is the code a department copies or calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from adapters.codecs.envelope import Envelope, TrustedKeys, verify
from adapters.errors import AdapterError
from adapters.platforms import codec_for
from security.sealing import SEALED_CONTENT_TYPE, ConsumerPrivateKey, sealing_context, sealing_of


class UnreadableMessage(AdapterError):
    """A message this consumer cannot accept: sealed to another key, changed on the way, or not signed by a
    trusted node. The message names the record."""


@dataclass(frozen=True)
class Received:
    envelope: Envelope
    sealed: bool
    """Whether the message came sealed to this consumer's key (False: it travelled in clear)."""


def open_message(key: ConsumerPrivateKey | None, content_type: str, headers: Mapping[str, object],
                 body: bytes) -> tuple[str, bytes, bool]:
    """(inner content type, inner body, sealed) of one relayed message. A sealed message without a key, or
    one that does not open, is UnreadableMessage."""
    if content_type != SEALED_CONTENT_TYPE:
        return content_type, body, False
    record_id = str(headers.get("x-exnode-record-id", ""))
    algorithm, kid, encapsulated, inner_type = sealing_of(headers)
    if key is None:
        raise UnreadableMessage(f"record {record_id}: the message is sealed to consumer key {kid!r} and no key "
                                "was given to open it")
    context = sealing_context(str(headers.get("x-exnode-batch-id", "")), kid)
    try:
        inner = key.open_sealed(algorithm, kid, encapsulated, context, record_id, body)
    except Exception as error:  # TamperedCiphertext, BadConsumerKey: both name the record
        raise UnreadableMessage(str(error)) from None
    return inner_type, inner, True


def read_message(key: ConsumerPrivateKey | None, kind: str, trusted: TrustedKeys, content_type: str,
                 headers: Mapping[str, object], body: bytes) -> Received:
    """Open, decode (the platform kind's codec) and verify one message; UnreadableMessage with every reason
    when it does not verify, so nothing unverified is handed on."""
    codec = codec_for(kind)
    inner_type, inner, sealed = open_message(key, content_type, headers, body)
    if inner_type != codec.CONTENT_TYPE:
        raise UnreadableMessage(f"record {headers.get('x-exnode-record-id')}: content type {inner_type!r}, "
                                f"a {kind} platform reads {codec.CONTENT_TYPE!r}")
    envelope = codec.decode(inner)
    problems = verify(envelope, trusted)
    if problems:
        raise UnreadableMessage(f"record {headers.get('x-exnode-record-id')}: {'; '.join(problems)}")
    return Received(envelope, sealed)
