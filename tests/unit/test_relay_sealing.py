"""A relayed message sealed to its consumer carries its sealing in one header (``x-exnode-enc``) and its
nonce is its number under the row's fresh key: each message still opens on its own, a message of a row
written before (four headers) still opens, and a changed or moved message does not."""

from __future__ import annotations

import pytest

from adapters.consumer import UnreadableMessage, open_message
from security.sealing import (
    HEADER_INNER,
    HEADER_SEALED,
    SEALED_CONTENT_TYPE,
    SM2_SM4,
    ConsumerPrivateKey,
    parse_consumer_key,
    seal_to,
    sealing_context,
)
from security.secrecy import NONCE_SIZE


@pytest.mark.parametrize("algorithm", ["X25519-HPKE", SM2_SM4])
def test_each_message_of_a_row_opens_on_its_own_with_the_one_header_and_nonces_never_repeat(algorithm: str):
    key = ConsumerPrivateKey.generate(algorithm)
    seal = seal_to(parse_consumer_key(algorithm, key.public_pem), sealing_context("b1", key.kid))
    headers = {"x-exnode-batch-id": "b1", **seal.message_headers("application/vnd.exnode.regional+json; v=1")}
    assert list(seal.message_headers("x")) == [HEADER_SEALED]
    sealed = [(f"r{n}", seal.seal(f"r{n}", f"body {n}".encode())) for n in range(5)]
    assert len({body[:NONCE_SIZE] for _, body in sealed}) == 5
    for record_id, body in reversed(sealed):  # any one, in any order, with a fresh consumer (no cache)
        opener = ConsumerPrivateKey(algorithm, key.private_pem)
        inner_type, inner, was_sealed = open_message(opener, SEALED_CONTENT_TYPE,
                                                     {**headers, "x-exnode-record-id": record_id}, body)
        assert was_sealed and inner == f"body {record_id[1:]}".encode()
        assert inner_type == "application/vnd.exnode.regional+json; v=1"
    with pytest.raises(UnreadableMessage, match="record r1.*tag does not verify"):  # moved to another record
        open_message(key, SEALED_CONTENT_TYPE, {**headers, "x-exnode-record-id": "r1"}, sealed[0][1])
    with pytest.raises(UnreadableMessage, match="record r0: sealed to key"):
        open_message(ConsumerPrivateKey.generate(algorithm), SEALED_CONTENT_TYPE,
                     {**headers, "x-exnode-record-id": "r0"}, sealed[0][1])


def test_a_message_of_a_row_written_with_the_four_sealing_headers_still_opens():
    key = ConsumerPrivateKey.generate()
    seal = seal_to(parse_consumer_key(key.algorithm, key.public_pem), sealing_context("b1", key.kid))
    headers = {"x-exnode-batch-id": "b1", "x-exnode-record-id": "r0", **seal.headers,
               HEADER_INNER: "application/json"}
    assert open_message(key, SEALED_CONTENT_TYPE, headers, seal.seal("r0", b"{}")) == ("application/json", b"{}", True)
