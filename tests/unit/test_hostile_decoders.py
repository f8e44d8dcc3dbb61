"""Hostile input at volume for the readers: the four envelope decoders (ministry XML, regional JSON,
department protobuf, the tier relay), the catalog file reader (XML / JSON) and the day manifest reader get
random bytes and mutations of valid documents (bytes flipped, cut, repeated, spliced). Each either decodes
or refuses with its own documented error naming the problem — never another exception."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.codecs import department, ministry, regional, relay
from adapters.codecs.envelope import EnvelopeError, seal
from catalog.errors import CatalogError
from catalog.records import Operation, Record
from node.files.catalog import read_catalog_file
from node.files.catalog_entries import CatalogFileError
from node.files.manifest_xml import read_day_manifest_xml
from security.errors import SecurityError
from security.keys import KeyStore

CODECS = {"ministry": ministry, "regional": regional, "department": department}
NOW = dt.datetime(2025, 3, 1, 2, 0, 0, 123456, tzinfo=dt.UTC)
EXAMPLES = int(os.environ.get("EXNODE_FUZZ_EXAMPLES", "150"))


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    keys = KeyStore.create(tmp_path_factory.mktemp("keys"))
    records = (Record("dibao-0001", 1, Operation.UPSERT, {"姓名": "张三", "月保障金额": 1234.5, "是否": True}),
               Record("dibao-0002", 2, Operation.DELETE, {}))
    envelope = seal(batch_id="b-1", node_id="region-nmg", provider_code="11150100011627354Q",
                    resource_code="311140001/000101", consumer_code="11100000000013127D", records=records,
                    signer=keys.active, now=NOW)
    return {name: codec.encode(envelope) for name, codec in CODECS.items()}


def mutations(seed: bytes) -> st.SearchStrategy[bytes]:
    """A valid document changed: a byte replaced, a slice cut or doubled, random bytes spliced in."""
    def flip(data: bytes, position: int, value: int) -> bytes:
        position %= max(1, len(data))
        return data[:position] + bytes([value]) + data[position + 1:]

    def cut(data: bytes, start: int, end: int) -> bytes:
        return data[:start % (len(data) + 1)] + data[end % (len(data) + 1):]

    def repeat(data: bytes, start: int, length: int, times: int) -> bytes:
        start %= max(1, len(data))
        return data[:start] + data[start:start + length] * times + data[start:]

    def splice(data: bytes, position: int, noise: bytes) -> bytes:
        position %= len(data) + 1
        return data[:position] + noise + data[position:]

    base = st.just(seed)
    return st.one_of(
        st.builds(flip, base, st.integers(0, 10**6), st.integers(0, 255)),
        st.builds(cut, base, st.integers(0, 10**6), st.integers(0, 10**6)),
        st.builds(repeat, base, st.integers(0, 10**6), st.integers(1, 64), st.integers(2, 500)),
        st.builds(splice, base, st.integers(0, 10**6), st.binary(min_size=1, max_size=32)),
    )


HOSTILE_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.mark.parametrize("name", sorted(CODECS))
@HOSTILE_SETTINGS
@given(data=st.data())
def test_an_envelope_decoder_refuses_hostile_bytes_with_an_envelope_error(documents, name, data):
    source = data.draw(st.one_of(st.binary(max_size=512), mutations(documents[name])))
    codec = CODECS[name]
    try:
        codec.decode(source)
    except EnvelopeError as error:
        assert str(error), "a refusal without a reason"


@HOSTILE_SETTINGS
@given(data=st.data())
def test_the_relay_decoder_refuses_hostile_bytes_with_an_envelope_error(documents, data):
    source = data.draw(st.one_of(st.binary(max_size=512), *(mutations(d) for d in documents.values())))
    try:
        relay.decode(source)
    except EnvelopeError as error:
        assert str(error)


CATALOG_JSON = json.dumps({"resources": [{
    "code": "311140001/000001", "name": "城乡最低生活保障对象信息", "classification": "基础",
    "provider": "民政部社会救助司", "provider_code": "11100000MB01284764", "summary": "低保",
    "items": [{"name": "姓名", "data_type": "C", "length": 50, "required": True}],
    "share_type": "有条件共享", "open_type": "不予开放", "update_cycle": "实时"}]}, ensure_ascii=False).encode()
CATALOG_XML = (b'<?xml version="1.0" encoding="UTF-8"?><catalog xmlns="urn:exnode:catalog:v1"><resource>'
               b'<code>311140001/000001</code><name>x</name></resource></catalog>')


@HOSTILE_SETTINGS
@given(source=st.one_of(st.binary(max_size=512), mutations(CATALOG_JSON), mutations(CATALOG_XML)))
def test_the_catalog_file_reader_refuses_hostile_bytes_naming_the_problem(source):
    try:
        read_catalog_file(source)
    except (CatalogFileError, CatalogError, SecurityError) as error:
        assert str(error)


MANIFEST = (b'<?xml version="1.0" encoding="UTF-8"?><dayManifest xmlns="urn:exnode:pull:v1" day="2025-03-01">'
            b'<root>00</root></dayManifest>')


@HOSTILE_SETTINGS
@given(source=st.one_of(st.binary(max_size=512), mutations(MANIFEST)))
def test_the_day_manifest_reader_refuses_hostile_bytes_naming_the_problem(source):
    try:
        read_day_manifest_xml(source)
    except (SecurityError, ValueError) as error:
        assert str(error)
