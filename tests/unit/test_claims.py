"""Record keys and the matching rules of 核验: one key however it is typed; MATCH / MISMATCH per data type;
bad input named; key items declared in the catalog and carried by every interchange format."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from catalog.claims import (
    Answer,
    Claim,
    LicenceState,
    answer,
    check_claims,
    key_text,
    licence_state,
    parse_key,
    record_key,
)
from catalog.errors import InvalidField
from catalog.interchange import metadata_from_dict, metadata_to_dict
from catalog.model import Item, ItemDataType, metadata_problems
from node.files.catalog_xml import read_xml, write_xml
from node.grpc.convert import metadata_from_proto, metadata_to_proto
from security.keyed_hash import KeyHasher
from tests.conftest import resource

ID = Item("公民身份号码", ItemDataType.STRING, 18, True, key=True)
NAME = Item("姓名", ItemDataType.STRING, 50, True)
AMOUNT = Item("保障金额", ItemDataType.CURRENCY, 12)
SINCE = Item("纳入保障日期", ItemDataType.DATE, 0, True)
LICENCE = Item("登记证字号", ItemDataType.STRING, 30, True, key=True)


def keyed(**changes: object):
    items = (ID, NAME, AMOUNT, SINCE)
    return resource(items=items, **changes)


def test_the_final_x_of_an_id_number_gives_the_same_key_in_either_case():
    assert parse_key([ID], {"公民身份号码": "11010519491231002x"}, "keys[0]") == \
        parse_key([ID], {"公民身份号码": "11010519491231002X"}, "keys[0]") == \
        record_key([ID], {"公民身份号码": "11010519491231002X", "姓名": "王芳"})


def test_full_width_digits_are_the_same_key():
    assert parse_key([ID], {"公民身份号码": "３６０４２６１９９１０１０１００７１"}, "k") == key_text(
        [ID], {"公民身份号码": "360426199101010071"})


@pytest.mark.parametrize("bad", ["360426199101010072", "36042619910101007", "ABC"])
def test_a_malformed_id_number_is_refused_naming_the_field(bad):
    with pytest.raises(InvalidField) as refused:
        parse_key([ID], {"公民身份号码": bad}, "keys[3]")
    assert refused.value.problems[0].field == "keys[3].公民身份号码"
    assert "GB 11643" in refused.value.problems[0].reason


def test_a_malformed_credit_code_is_refused_naming_the_field():
    uscc = Item("统一社会信用代码", ItemDataType.STRING, 18, True, key=True)
    assert parse_key([uscc], {"统一社会信用代码": "91110000600037341l"}, "k")  # lower case: the same code
    with pytest.raises(InvalidField) as refused:
        parse_key([uscc], {"统一社会信用代码": "91110000600037341A"}, "keys[0]")
    assert refused.value.problems[0].field == "keys[0].统一社会信用代码"
    assert "GB 32100" in refused.value.problems[0].reason


def test_a_key_must_name_every_key_item_and_no_other():
    with pytest.raises(InvalidField) as refused:
        parse_key([ID], {"姓名": "王芳"}, "keys[0]")
    assert {p.field for p in refused.value.problems} == {"keys[0].姓名", "keys[0].公民身份号码"}
    with pytest.raises(InvalidField, match="declares no key items"):
        parse_key([], {"姓名": "王芳"}, "keys[0]")


def test_a_record_without_its_key_has_no_key():
    assert record_key([ID], {}) is None
    assert record_key([ID], {"公民身份号码": ""}) is None


def test_the_keyed_hash_depends_on_the_secret_and_is_not_the_clear_key():
    text = key_text([ID], {"公民身份号码": "360426199101010071"})
    one, other = KeyHasher(b"a" * 32), KeyHasher(b"b" * 32)
    assert one(text) != other(text)
    assert len(one(text)) == 64 and "360426" not in one(text)
    with pytest.raises(ValueError):
        KeyHasher(b"short")


@pytest.mark.parametrize(("item", "asserted", "stored", "expected"), [
    (NAME, "王　芳", "王芳", Answer.MATCH),           # an ideographic space
    (NAME, " 王芳 ", "王芳", Answer.MATCH),
    (NAME, "ＷＡＮＧ Fang", "wang fang", Answer.MATCH),  # full width and case
    (NAME, "王方", "王芳", Answer.MISMATCH),
    (ID, "11010519491231002x", "11010519491231002X", Answer.MATCH),
    (LICENCE, "J110105-2020-000123", "J110105-2020-000123", Answer.MATCH),
    (LICENCE, "j110105-2020-000123", "J110105-2020-000123", Answer.MISMATCH),  # codes are exact
    (SINCE, "2025/06/01", "2025-06-01", Answer.MATCH),
    (SINCE, "20250601", "2025-06-01", Answer.MATCH),
    (SINCE, "2025年6月1日", "2025-06-01", Answer.MATCH),
    (SINCE, "2025-06-02", "2025-06-01", Answer.MISMATCH),
    (AMOUNT, "≤ 1200", 1234.5, Answer.MISMATCH),
    (AMOUNT, "≤ 1300", 1234.5, Answer.MATCH),
    (AMOUNT, "<=1234.5", 1234.5, Answer.MATCH),
    (AMOUNT, "> 1234.5", 1234.5, Answer.MISMATCH),
    (AMOUNT, "1234.50", 1234.5, Answer.MATCH),
    (AMOUNT, "≠ 0", 1234.5, Answer.MATCH),
    (AMOUNT, "≤ 1200", None, Answer.NO_RECORD),
    (Item("是否重点保障对象", ItemDataType.LOGICAL), "是", True, Answer.MATCH),
    (Item("是否重点保障对象", ItemDataType.LOGICAL), "false", True, Answer.MISMATCH),
])
def test_claims_are_answered_by_the_rule_of_their_data_type(item, asserted, stored, expected):
    check_claims([item], [Claim(item.name, asserted)], [item.name])
    assert answer(item, asserted, stored) is expected


@pytest.mark.parametrize(("claim", "field", "reason"), [
    (Claim("保障金额", "about 1200"), "claims[0].value", "comparison"),
    (Claim("纳入保障日期", "June 2025"), "claims[0].value", "not a date"),
    (Claim("公民身份号码", "360426199101010072"), "claims[0].value", "GB 11643"),
    (Claim("户籍", "x"), "claims[0].item", "not an item"),
    (Claim("姓名", ""), "claims[0].value", "empty"),
])
def test_a_claim_that_cannot_be_compared_is_refused_naming_the_field(claim, field, reason):
    with pytest.raises(InvalidField) as refused:
        check_claims([ID, NAME, AMOUNT, SINCE], [claim], ["姓名"])
    assert refused.value.problems[0].field == field and reason in refused.value.problems[0].reason


def test_a_licence_state_comes_from_its_state_item_and_its_validity():
    items = [LICENCE, Item("证照状态", ItemDataType.STRING, 10), Item("有效期至", ItemDataType.DATE)]
    today = dt.date(2026, 12, 1)
    assert licence_state(items, {"证照状态": "有效", "有效期至": "2030-01-01"}, today) is LicenceState.VALID
    assert licence_state(items, {"证照状态": "注销"}, today) is LicenceState.REVOKED
    assert licence_state(items, {"证照状态": "有效", "有效期至": "2026-01-01"}, today) is LicenceState.EXPIRED
    assert licence_state([LICENCE], {}, today) is None


def test_a_key_item_must_be_required_and_of_a_comparable_type():
    meta = resource(items=(replace(ID, required=False), Item("备注", ItemDataType.MEMO, 0, True, key=True)))
    problems = {p.field: p.reason for p in metadata_problems(meta)}
    assert "must be required" in problems["items[0].key"]
    assert "cannot be a key item" in problems["items[1].key"]


def test_key_items_survive_json_xml_and_proto():
    meta = keyed()
    assert meta.key_items == (ID,)
    assert metadata_from_dict(metadata_to_dict(meta)) == meta
    assert metadata_to_dict(meta)["items"][0]["key"] is True
    assert "key" not in metadata_to_dict(meta)["items"][1]
    (entry,) = read_xml(write_xml([meta]))
    assert entry.parsed == meta
    assert metadata_from_proto(metadata_to_proto(meta)) == meta


def test_a_key_flag_that_is_not_boolean_is_refused():
    data = metadata_to_dict(keyed())
    data["items"][0]["key"] = "yes"
    with pytest.raises(InvalidField) as refused:
        metadata_from_dict(data)
    assert refused.value.problems[0].field == "items[0].key"
