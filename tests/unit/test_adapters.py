"""Platform adapters: every codec gives back the envelope it was given, signed records verify on arrival,
tampering is named, masking happens before signing, and platform configuration is checked."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from pathlib import Path

import pytest
from exnode.v1 import envelope_pb2
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from adapters.codecs import department, ministry, regional
from adapters.codecs.envelope import (
    Envelope,
    EnvelopeError,
    inclusion_proof,
    leaves,
    masked,
    seal,
    seal_split,
    split,
    verify,
)
from adapters.platforms import KINDS, Platform, PlatformConfigError, codec_for, load_platforms
from catalog.codes import credit_code_problem
from catalog.records import Operation, Record
from security.keys import KeyStore
from security.xml import UnsafeXml

ROOT = Path(__file__).resolve().parents[2]
NODE = "region-nmg"
PROVIDER = "11150100011627354Q"  # 呼和浩特市民政局
CONSUMER = "11100000000013127D"  # 民政部
RESOURCE = "311140001/000101"
NOW = dt.datetime(2025, 3, 1, 2, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=8)))
CODECS = [ministry, regional, department]
CODEC_IDS = ["ministry", "regional", "department"]

LOW_INCOME_FAMILY = {
    "姓名": "张三",
    "公民身份号码": "360426198501020071",
    "救助金额": 1234.50,
    "金额文本": "1234.50",
    "家庭人口": 3,
    "是否低保": True,
    "是否特困": False,
    "备注": None,
    "说明": '第一行\n第二行\t"引号" <标签> & 符号 ]]>\r',
    "空文本": "",
    " 前后空格 ": "  保留  ",
    "大整数": 2**62 + 1,
    "小数": -1.5e-07,
    "大数": 1e21,
}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    return KeyStore.create(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def trusted(keys: KeyStore) -> dict:
    return {NODE: keys.public}


def sample_records() -> tuple[Record, ...]:
    return (
        Record("dibao-0001", 1, Operation.UPSERT, dict(LOW_INCOME_FAMILY)),
        Record("dibao-0002", 2, Operation.UPSERT, {}),
        Record("dibao-0003", 3, Operation.DELETE, {}),
        Record("dibao-0004", 4, Operation.UPSERT, {"姓名": "李四", "家庭人口": 1, "是否低保": False}),
    )


def sealed(keys: KeyStore, records: tuple[Record, ...] | None = None, **changes: object) -> Envelope:
    arguments: dict = dict(batch_id="batch-20250301-0001", node_id=NODE, provider_code=PROVIDER,
                           resource_code=RESOURCE, consumer_code=CONSUMER,
                           records=sample_records() if records is None else records, signer=keys.active, now=NOW)
    arguments.update(changes)
    return seal(**arguments)


def typed(envelope: Envelope) -> list[bytes]:
    """The canonical leaves: unlike ==, they tell 1 from 1.0 and from True."""
    return leaves(envelope)


# Round trips -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_round_trip_gives_back_the_same_envelope(codec, keys, trusted):
    envelope = sealed(keys)
    decoded = codec.decode(codec.encode(envelope))
    assert decoded == envelope
    assert typed(decoded) == typed(envelope)
    assert decoded.created_at == NOW and decoded.created_at.utcoffset() is not None
    assert verify(decoded, trusted) == []


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_values_keep_their_json_type(codec, keys):
    payload = codec.decode(codec.encode(sealed(keys))).records[0].payload
    assert type(payload["救助金额"]) is float and payload["救助金额"] == 1234.5
    assert payload["金额文本"] == "1234.50"
    assert type(payload["家庭人口"]) is int and payload["家庭人口"] == 3
    assert payload["是否低保"] is True and payload["是否特困"] is False
    assert payload["备注"] is None and payload["空文本"] == ""
    assert payload[" 前后空格 "] == "  保留  "
    assert payload["说明"] == LOW_INCOME_FAMILY["说明"]
    assert payload["大整数"] == 2**62 + 1


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_empty_batch_round_trips_and_verifies(codec, keys, trusted):
    envelope = sealed(keys, records=())
    decoded = codec.decode(codec.encode(envelope))
    assert decoded == envelope and decoded.signed.tree_size == 0
    assert verify(decoded, trusted) == []


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_content_types_are_declared(codec):
    assert codec.CONTENT_TYPE in ("application/xml", "application/json", "application/x-protobuf")


def test_regional_json_keeps_chinese_text_readable(keys):
    data = regional.encode(sealed(keys))
    assert "张三".encode() in data and b"\\u" not in data


def test_every_record_has_an_inclusion_proof_under_the_signed_root(keys):
    envelope = sealed(keys)
    for index, leaf in enumerate(leaves(envelope)):
        proof = inclusion_proof(envelope, index)
        assert envelope.signed.verify_record(leaf, proof, keys.public[keys.active.kid])


# One record per message (the relay) ---------------------------------------------------------------------

@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_each_record_of_a_split_batch_round_trips_and_verifies_alone(codec, keys, trusted):
    envelope = sealed(keys)
    parts = split(envelope)
    assert [p.records[0] for p in parts] == list(envelope.records)
    for index, part in enumerate(parts):
        decoded = codec.decode(codec.encode(part))
        assert decoded == part and decoded.proof is not None and decoded.proof.index == index
        assert decoded.signed == envelope.signed
        assert verify(decoded, trusted) == []


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_a_changed_record_of_a_split_batch_is_detected(codec, keys, trusted):
    data = codec.encode(split(sealed(keys))[0])
    tampered = codec.decode(data.replace("张三".encode(), "王五".encode()))
    problems = verify(tampered, trusted)
    assert len(problems) == 1 and problems[0].startswith("signed.root:"), problems


def test_a_record_moved_to_another_place_in_the_batch_is_detected(keys, trusted):
    first, second = split(sealed(keys))[:2]
    moved = dataclasses.replace(first, proof=second.proof)
    assert verify(moved, trusted)[0].startswith("signed.root:")


@pytest.mark.parametrize("change, field", [
    (lambda p: dataclasses.replace(p, tree_size=p.tree_size + 1), "proof.tree_size"),
    (lambda p: dataclasses.replace(p, index=p.tree_size), "proof.index"),
    (lambda p: dataclasses.replace(p, path=p.path + (b"x",)), "proof.path[2]"),
])
def test_a_malformed_proof_is_refused_naming_the_field(keys, change, field):
    part = split(sealed(keys))[0]
    bad = dataclasses.replace(part, proof=change(part.proof))
    for codec in (regional, department):
        with pytest.raises(EnvelopeError) as error:
            codec.encode(bad)
        assert error.value.field == field


def test_a_proof_with_a_wrong_path_length_is_named(keys, trusted):
    part = split(sealed(keys))[0]
    short = dataclasses.replace(part, proof=dataclasses.replace(part.proof, path=part.proof.path[:1]))
    assert verify(short, trusted)[0].startswith("proof: proof has 1 hashes, fewer")


def test_a_split_record_is_valid_ministry_xml(keys):
    document = etree.fromstring(ministry.encode(split(sealed(keys))[3]))
    assert ministry.envelope_schema().validate(document), ministry.envelope_schema().error_log


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_the_disputed_flag_travels_in_every_format_outside_the_signature(codec, keys, trusted):
    """校核纠错: a record under an open objection is marked in the relay's envelope; the mark is not signed
    (an objection changes neither the record nor its signature), so the envelope verifies with or without it."""
    envelope = sealed(keys)
    disputed_id = envelope.records[1].id
    parts = seal_split(batch_id=envelope.batch_id, node_id=envelope.node_id, provider_code=envelope.provider_code,
                       resource_code=envelope.resource_code, consumer_code=envelope.consumer_code,
                       records=envelope.records, signer=keys.active, now=envelope.created_at,
                       disputed=[disputed_id])
    assert [p.disputed for p in parts[:3]] == [(), (disputed_id,), ()]
    for part in parts[:3]:
        decoded = codec.decode(codec.encode(part))
        assert decoded == part and verify(decoded, trusted) == []
    whole = dataclasses.replace(envelope, disputed=(envelope.records[0].id, disputed_id))
    assert codec.decode(codec.encode(whole)).disputed == whole.disputed
    if codec is ministry:
        assert ministry.envelope_schema().validate(etree.fromstring(ministry.encode(parts[1])))


@pytest.mark.parametrize("disputed, field", [(("nope",), "disputed[0]"), (("A", "A"), "disputed")])
def test_a_disputed_mark_naming_no_record_of_the_envelope_is_refused(keys, disputed, field):
    envelope = sealed(keys)
    ids = tuple(envelope.records[0].id if d == "A" else d for d in disputed)
    for codec in (regional, department):
        with pytest.raises(EnvelopeError) as error:
            codec.encode(dataclasses.replace(envelope, disputed=ids))
        assert error.value.field == field


# Tampering ---------------------------------------------------------------------------------------------

def _root_on_the_wire(codec, root: bytes) -> bytes:
    return root if codec is department else root.hex().encode()


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_a_changed_record_value_is_detected(codec, keys, trusted):
    data = codec.encode(sealed(keys))
    assert data.count("张三".encode()) == 1
    tampered = codec.decode(data.replace("张三".encode(), "王五".encode()))
    problems = verify(tampered, trusted)
    assert len(problems) == 1 and problems[0].startswith("signed.root:"), problems


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_a_changed_root_is_detected(codec, keys, trusted):
    envelope = sealed(keys)
    other_root = bytes(32)
    data = codec.encode(envelope).replace(_root_on_the_wire(codec, envelope.signed.root),
                                          _root_on_the_wire(codec, other_root))
    problems = verify(codec.decode(data), trusted)
    assert [problem.split(":")[0] for problem in problems] == ["signed.root", "signed.signature"], problems


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_a_changed_key_id_is_detected(codec, keys, trusted):
    kid = keys.active.kid
    data = codec.encode(sealed(keys)).replace(kid.encode(), b"f" * len(kid))
    problems = verify(codec.decode(data), trusted)
    assert problems == [f"signed.kid: node {NODE!r} has no key {'f' * len(kid)!r}"]


def test_an_unknown_node_is_named(keys, trusted):
    problems = verify(sealed(keys, node_id="somebody-else"), trusted)
    assert problems == ["node_id: 'somebody-else' is not a node whose keys are trusted here"]


def test_another_nodes_key_does_not_vouch_for_this_node(keys, tmp_path):
    other = KeyStore.create(tmp_path / "other")
    envelope = sealed(other)  # signed by another node's key, claiming to be NODE
    problems = verify(envelope, {NODE: keys.public, "other": other.public})
    assert problems == [f"signed.kid: node {NODE!r} has no key {other.active.kid!r}"]


def test_a_forged_signature_is_detected(keys, trusted, tmp_path):
    envelope = sealed(keys)
    forged = dataclasses.replace(envelope.signed, signature=KeyStore.create(tmp_path / "k").active.sign(b"x"))
    problems = verify(dataclasses.replace(envelope, signed=forged), trusted)
    assert problems == [f"signed.signature: does not verify with key {keys.active.kid!r} of node {NODE!r}"]


def test_a_dropped_record_is_detected(keys, trusted):
    envelope = sealed(keys)
    shorter = dataclasses.replace(envelope, records=envelope.records[:-1])
    problems = verify(shorter, trusted)
    assert [problem.split(":")[0] for problem in problems] == ["signed.tree_size", "signed.root"]
    assert "covers 4 records, the envelope holds 3" in problems[0]


# Masking -----------------------------------------------------------------------------------------------

GRANT_ITEMS = ("姓名", "公民身份号码", "救助金额")
GRANT_MASKING = {"公民身份号码": "keep:6,4"}


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_masking_is_applied_before_sealing_so_the_consumer_can_verify(codec, keys, trusted):
    envelope = sealed(keys, records=masked(sample_records(), GRANT_ITEMS, GRANT_MASKING))
    data = codec.encode(envelope)
    assert b"198501020071" not in data and "是否低保".encode() not in data
    received = codec.decode(data)
    first = received.records[0].payload
    assert first == {"姓名": "张三", "公民身份号码": "360426********0071", "救助金额": 1234.5}
    assert received.records[3].payload == {"姓名": "李四"}
    assert verify(received, trusted) == []
    assert received.signed.verify_record(leaves(received)[0], inclusion_proof(received, 0),
                                         keys.public[keys.active.kid])


def test_masking_keeps_deletes_and_their_order():
    records = masked(sample_records(), GRANT_ITEMS, GRANT_MASKING)
    assert [(r.id, r.sequence, r.operation) for r in records] == \
        [(r.id, r.sequence, r.operation) for r in sample_records()]
    assert records[2] == Record("dibao-0003", 3, Operation.DELETE, {})


def test_a_delete_never_carries_ungranted_items():
    leaky = Record("dibao-0009", 9, Operation.DELETE, {"姓名": "张三", "公民身份号码": "360426198501020071"})
    (record,) = masked([leaky], ("姓名",), {})
    assert record == Record("dibao-0009", 9, Operation.DELETE, {"姓名": "张三"})


# Sealing refuses what no codec could carry -------------------------------------------------------------

@pytest.mark.parametrize(("changes", "field"), [
    ({"now": dt.datetime(2025, 3, 1, 2, 0)}, "created_at"),
    ({"consumer_code": "11100000000013127A"}, "consumer_code"),
    ({"resource_code": "abc"}, "resource_code"),
    ({"batch_id": "batch 1"}, "batch_id"),
    ({"records": (Record("a b", 1, Operation.UPSERT, {}),)}, "records[0].id"),
    ({"records": (Record("a", 0, Operation.UPSERT, {}),)}, "records[0].sequence"),
    ({"records": (Record("a", 1, Operation.UPSERT, {"x": float("nan")}),)}, "records[0].payload.x"),
    ({"records": (Record("a", 1, Operation.UPSERT, {"x": [1, 2]}),)}, "records[0].payload.x"),
    ({"records": (Record("a", 1, Operation.UPSERT, {"x": "\ud800"}),)}, "records[0].payload.x"),
])
def test_seal_refuses_what_no_codec_could_carry(keys, changes, field):
    with pytest.raises(EnvelopeError) as raised:
        sealed(keys, **changes)
    assert raised.value.field == field


# Ministry XML ------------------------------------------------------------------------------------------

def test_ministry_xml_is_valid_against_the_schema(keys):
    data = ministry.encode(sealed(keys))
    document = etree.fromstring(data)
    schema = etree.XMLSchema(etree.parse(str(ROOT / "adapters" / "codecs" / "schemas" / "ministry-envelope.xsd")))
    assert schema.validate(document), schema.error_log
    assert document.tag == "{urn:exnode:envelope:v1}exchangeEnvelope" and document.get("version") == "1"
    ns = {"e": "urn:exnode:envelope:v1"}
    item = document.find("e:records/e:record/e:item[@name='家庭人口']", ns)
    assert (item.get("type"), item.text) == ("number", "3")
    assert document.find("e:records/e:record/e:item[@name='备注']", ns).get("type") == "null"
    signature = document.find("e:signature", ns)
    assert signature.get("root") == sealed(keys).signed.root.hex() and signature.get("treeSize") == "4"


def test_ministry_decode_refuses_a_doctype_with_entities(keys):
    data = ministry.encode(sealed(keys)).replace(
        b"<exchangeEnvelope", b'<!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n<exchangeEnvelope', 1)
    with pytest.raises(EnvelopeError) as raised:
        ministry.decode(data)
    assert raised.value.field == "document" and "DOCTYPE" in str(raised.value)
    assert isinstance(raised.value.__cause__, UnsafeXml) and raised.value.__cause__.reason == "dtd"


def test_ministry_decode_refuses_an_oversized_document(keys):
    data = ministry.encode(sealed(keys))
    with pytest.raises(EnvelopeError, match="at most"):
        ministry.decode(data, max_bytes=len(data) - 1)
    assert ministry.decode(data, max_bytes=len(data)) == sealed(keys)


def test_ministry_decode_refuses_a_document_breaking_the_schema(keys):
    data = re.sub(rb"<signature .*</signature>", b"", ministry.encode(sealed(keys)), flags=re.S)
    with pytest.raises(EnvelopeError, match="signature") as raised:
        ministry.decode(data)
    assert raised.value.field == "document"


def test_ministry_decode_refuses_duplicate_item_names(keys):
    data = ministry.encode(sealed(keys)).replace("name=\"金额文本\"".encode(), "name=\"救助金额\"".encode())
    with pytest.raises(EnvelopeError, match="itemNameUnique|[Dd]uplicate"):
        ministry.decode(data)


def test_ministry_decode_names_an_item_whose_text_breaks_its_type(keys):
    data = ministry.encode(sealed(keys)).replace(b"type=\"number\">3<", b"type=\"number\">three<")
    with pytest.raises(EnvelopeError) as raised:
        ministry.decode(data)
    assert raised.value.field.startswith("records[0].payload.家庭人口") and "'three' is not a number" in str(raised.value)


def test_ministry_encode_refuses_characters_xml_cannot_carry(keys):
    envelope = sealed(keys, records=(Record("a", 1, Operation.UPSERT, {"备注": "bell\x07"}),))
    with pytest.raises(EnvelopeError) as raised:
        ministry.encode(envelope)
    assert raised.value.field == "records[0].payload.备注" and "U+0007" in str(raised.value)


# Regional JSON -----------------------------------------------------------------------------------------

def _regional_document(keys: KeyStore) -> dict:
    return json.loads(regional.encode(sealed(keys)))


def _decode_changed(keys: KeyStore, change) -> EnvelopeError:
    document = _regional_document(keys)
    change(document)
    with pytest.raises(EnvelopeError) as raised:
        regional.decode(json.dumps(document, ensure_ascii=False).encode())
    return raised.value


@pytest.mark.parametrize(("change", "field", "words"), [
    (lambda d: d["records"][1].pop("sequence"), "records[1].sequence", "is missing"),
    (lambda d: d["records"][0].update(sequence="1"), "records[0].sequence", "must be a whole number"),
    (lambda d: d["records"][0].update(sequence=True), "records[0].sequence", "must be a whole number"),
    (lambda d: d["records"][0].update(operation="MERGE"), "records[0].operation", "not UPSERT or DELETE"),
    (lambda d: d["records"][0].update(payload=[]), "records[0].payload", "must be a JSON object"),
    (lambda d: d["records"][0]["payload"].update(地址={"省": "内蒙古"}), "records[0].payload.地址", "is a dict"),
    (lambda d: d["records"][0].update(extra=1), "records[0].extra", "is not a field here"),
    (lambda d: d.pop("consumer_code"), "consumer_code", "is missing"),
    (lambda d: d.update(consumer_code="11100000000013127A"), "consumer_code", "check character"),
    (lambda d: d.update(created_at="2025-03-01T02:00:00"), "created_at", "no time zone"),
    (lambda d: d.update(version=2), "version", "not a version"),
    (lambda d: d.update(records={}), "records", "must be a JSON array"),
    (lambda d: d["signed"].pop("root"), "signed.root", "is missing"),
    (lambda d: d["signed"].update(root="zz"), "signed.root", "not hexadecimal"),
    (lambda d: d["signed"].update(root="00"), "signed.root", "is 1 bytes"),
])
def test_regional_decode_names_the_bad_field(keys, change, field, words):
    error = _decode_changed(keys, change)
    assert error.field == field and words in str(error), str(error)


@pytest.mark.parametrize(("data", "words"), [
    (b"{not json", "is not valid JSON"),
    (b"[]", "must be a JSON object"),
    ("{\"版本\": 1}".encode("gb18030"), "is not UTF-8"),
    (b'{"version": NaN}', "NaN is not a JSON number"),
    (b'{"version": 1, "version": 1}', "'version' appears twice"),
])
def test_regional_decode_refuses_malformed_documents(data, words):
    with pytest.raises(EnvelopeError) as raised:
        regional.decode(data)
    assert raised.value.field == "document" and words in str(raised.value)


def test_regional_decode_refuses_a_duplicate_item(keys):
    data = regional.encode(sealed(keys)).replace('"金额文本"'.encode(), '"救助金额"'.encode())
    with pytest.raises(EnvelopeError, match="'救助金额' appears twice"):
        regional.decode(data)


def test_regional_decode_refuses_an_oversized_document(keys):
    data = regional.encode(sealed(keys))
    with pytest.raises(EnvelopeError, match="at most"):
        regional.decode(data, max_bytes=100)


# Departmental protobuf ---------------------------------------------------------------------------------

def _message(keys: KeyStore) -> envelope_pb2.PlatformEnvelope:
    return department.to_message(sealed(keys))


@pytest.mark.parametrize(("change", "field"), [
    (lambda m: m.ClearField("signed"), "signed"),
    (lambda m: m.ClearField("created_at"), "created_at"),
    (lambda m: setattr(m, "version", 0), "version"),
    (lambda m: setattr(m.records[0], "operation", 0), "records[0].operation"),
    (lambda m: setattr(m.records[0], "payload_json", "[1]"), "records[0].payload_json"),
    (lambda m: setattr(m.records[0], "payload_json", "{\"a\": 1, \"a\": 2}"), "records[0].payload_json"),
    (lambda m: setattr(m.records[0], "sequence", 0), "records[0].sequence"),
    (lambda m: setattr(m.signed, "root", b"\x00"), "signed.root"),
    (lambda m: setattr(m, "provider_code", ""), "provider_code"),
])
def test_department_decode_names_the_bad_field(keys, change, field):
    message = _message(keys)
    change(message)
    with pytest.raises(EnvelopeError) as raised:
        department.decode(message.SerializeToString())
    assert raised.value.field == field, str(raised.value)


def test_department_decode_refuses_garbage():
    with pytest.raises(EnvelopeError) as raised:
        department.decode(b"\xff\xff\xff\xff")
    assert raised.value.field == "document"


# Property: any payload round-trips through every codec and still verifies -----------------------------

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_text = st.text(st.characters(exclude_categories=("Cs",))).filter(lambda text: not _NOT_XML.search(text))
_values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                    _text)
_records = st.lists(
    st.builds(lambda index, operation, payload: (index, operation, payload),
              st.integers(1, 2**63 - 1), st.sampled_from(Operation),
              st.dictionaries(_text.filter(bool), _values, max_size=8)),
    max_size=6)


@settings(max_examples=60, deadline=None)
@given(raw=_records)
def test_any_payload_round_trips_through_every_codec(keys, trusted, raw):
    records = tuple(Record(f"r-{position}", sequence, operation, payload)
                    for position, (sequence, operation, payload) in enumerate(raw))
    envelope = sealed(keys, records=records)
    for codec in CODECS:
        decoded = codec.decode(codec.encode(envelope))
        assert decoded == envelope and typed(decoded) == typed(envelope)
        assert verify(decoded, trusted) == []


# Platforms ---------------------------------------------------------------------------------------------

def test_sample_platforms_file_loads_with_valid_codes():
    platforms = load_platforms(ROOT / "ops" / "platforms.sample.toml", "region")
    assert [(p.kind, p.queue) for p in platforms] == [
        ("ministry", "exnode.region.out.mca"), ("regional", "exnode.region.out.nmg-mzt"),
        ("department", "exnode.region.out.hhht-mzj")]
    assert all(credit_code_problem(p.consumer_code) is None for p in platforms)
    assert {p.consumer_code for p in platforms} >= {"11100000000013542N", "11150100011627354Q"}
    assert platforms[0].codec is ministry and platforms[2].codec is department


def test_a_platform_may_name_its_queue(tmp_path):
    path = tmp_path / "platforms.toml"
    path.write_text('[[platform]]\nname = "mca"\nkind = "ministry"\nconsumer_code = "11100000000013127D"\n'
                    'queue = "ministry.inbound"\n', encoding="utf-8")
    assert load_platforms(path, "n1") == [Platform("mca", "ministry", "11100000000013127D", "ministry.inbound")]


def test_a_file_without_platforms_is_no_platforms(tmp_path):
    path = tmp_path / "platforms.toml"
    path.write_text("# none yet\n", encoding="utf-8")
    assert load_platforms(path, "n1") == []


_GOOD = '[[platform]]\nname = "{name}"\nkind = "{kind}"\nconsumer_code = "{code}"\n'


def _platform_table(name: str = "p", kind: str = "regional", code: str = "11150100011627354Q") -> str:
    return _GOOD.format(name=name, kind=kind, code=code)


@pytest.mark.parametrize(("text", "where"), [
    (_platform_table("a") + _platform_table("b") + _platform_table("c", kind="xml"), "platform[2].kind: 'xml'"),
    (_platform_table(code="11150100011627354A"), "platform[0].consumer_code:"),
    (_platform_table(name="has.dot"), "platform[0].name:"),
    ('[[platform]]\nkind = "ministry"\nconsumer_code = "11100000000013127D"\n', "platform[0].name: is missing"),
    (_platform_table("a") + _platform_table("a"), "platform[1].name: 'a' is already"),
    (_platform_table() + 'colour = "red"\n', "platform[0].colour: unknown key"),
    (_platform_table() + "queue = 5\n", "platform[0].queue: must be a non-empty string"),
    (_platform_table() + 'queue = "amq.gen"\n', "platform[0].queue:"),
    ('platform = "ministry"\n', "platform: must be an array of tables"),
    ('[node]\nid = "x"\n', "node: unknown key"),
    ("[[platform]\n", "not valid TOML"),
])
def test_platform_errors_name_the_file_and_the_key(tmp_path, text, where):
    path = tmp_path / "platforms.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PlatformConfigError) as raised:
        load_platforms(path, "n1")
    assert str(raised.value).startswith(f"{path}: ") and where in str(raised.value), str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_a_missing_platforms_file_is_named(tmp_path):
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "nope.toml"))):
        load_platforms(tmp_path / "nope.toml", "n1")


def test_codec_for_each_kind_and_not_for_others():
    assert {kind: codec_for(kind).CONTENT_TYPE for kind in KINDS} == {
        "ministry": "application/xml", "regional": "application/json", "department": "application/x-protobuf",
        "node": "application/vnd.exnode.relay+x-protobuf"}
    with pytest.raises(ValueError, match="'soap' is not a platform kind"):
        codec_for("soap")
