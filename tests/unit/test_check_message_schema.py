"""The published household-check schema is a valid JSON Schema and refuses what the format forbids (the
integration tests hold the real messages against it)."""

from __future__ import annotations

import copy

import pytest

from adapters.responder import answer_for
from tests.message_schema import problems

REQUEST = {"request": {
    "format": "exnode-check/1", "check_id": "HC-20261201-97037FC3", "target": "bank-icbc", "category": "银行",
    "from": "hhht", "requester": "11150100011627354Q", "purpose": "低保申请家庭经济状况核对",
    "authorisation": "SQ2026-0001", "deadline": "2026-12-01T18:00:00+00:00",
    "members": [{"id_number": "360426199101010071", "name": "王芳"}]}, "kid": "k1", "signature": "c2ln"}


def test_a_well_formed_request_and_the_reference_responders_answer_conform():
    assert problems(REQUEST) == []
    answer = answer_for(REQUEST["request"], {"members": {"360426199101010071": {"存款余额": 1.5}}}, "bank-icbc")
    assert problems({"answer": answer, "kid": "k", "signature": "c2ln"}) == []


@pytest.mark.parametrize(("path", "value", "named"), [
    (("authorisation",), None, "authorisation"),  # no check without the applicant's written authorisation
    (("members", 0, "id_number"), "36042619910101007x", "id_number"),  # the final X upper-case
    (("members",), [], "members"),
    (("requester",), "not-a-uscc", "requester"),
    (("deadline",), "tomorrow", "deadline"),
    (("format",), "exnode-check/2", "format"),
])
def test_the_schema_refuses_a_request_outside_the_format(path, value, named):
    message = copy.deepcopy(REQUEST)
    target = message["request"]
    for step in path[:-1]:
        target = target[step]
    if value is None:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    found = problems(message)
    assert found and any(named in problem for problem in found), found
