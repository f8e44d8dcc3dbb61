"""Records against a resource's items: what ingest refuses before anything is stored, so that every
stored record can also be relayed in every platform format."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog.model import Item, ItemDataType
from catalog.records import (
    MAX_SEQUENCE,
    Operation,
    PayloadSchema,
    Record,
    canonical_record,
    payload_problems,
    with_canonical,
)

ITEMS = (Item("姓名", ItemDataType.STRING, 50, required=True), Item("家庭保障人口数", ItemDataType.INTEGER, 3),
         Item("出生日期", ItemDataType.DATE), Item("月保障金额", ItemDataType.CURRENCY, 12))


def fields(record: Record) -> list[str]:
    return [problem.field for problem in payload_problems(ITEMS, record, "records[0]")]


def test_a_fitting_record_has_no_problems():
    assert fields(Record("DB-1", 1, Operation.UPSERT, {"姓名": "张三", "家庭保障人口数": 3, "月保障金额": 1234.5})) == []


@pytest.mark.parametrize(("payload", "field"), [
    ({"姓名": "张\ud800三"}, "records[0].payload.姓名"),  # a lone surrogate: no UTF-8 encoder can write it
    ({"姓名": "张\x07三"}, "records[0].payload.姓名"),
    ({"姓名": "张三", "家庭保障人口数": float("nan")}, "records[0].payload.家庭保障人口数"),
    ({"姓名": "张三", "银行卡号": "6222"}, "records[0].payload.银行卡号"),
    ({}, "records[0].payload.姓名"),
])
def test_values_no_platform_could_carry_are_named(payload, field):
    assert fields(Record("DB-1", 1, Operation.UPSERT, payload)) == [field]


def test_sequence_numbers_must_fit_the_database():
    assert fields(Record("DB-1", MAX_SEQUENCE + 1, Operation.UPSERT, {"姓名": "张三"})) == ["records[0].sequence"]
    assert fields(Record("DB-1", 0, Operation.UPSERT, {"姓名": "张三"})) == ["records[0].sequence"]


def test_a_delete_needs_only_its_id_but_a_payload_it_carries_must_fit():
    assert fields(Record("DB-1", 1, Operation.DELETE, {})) == []
    assert fields(Record("DB-1", 1, Operation.DELETE, {"家庭保障人口数": 2})) == []  # nothing is required
    assert fields(Record("DB-1", 1, Operation.DELETE, {"姓名": ["a list"]})) == ["records[0].payload.姓名"]
    assert fields(Record("DB-1", 1, Operation.DELETE, {"银行卡号": "6222"})) == ["records[0].payload.银行卡号"]


# -- the ingest's fast paths give exactly the plain definitions' answers ---------------------------------

ALL_KINDS = (Item("姓名", ItemDataType.STRING, 8, required=True), Item("备注", ItemDataType.MEMO),
             Item("人口数", ItemDataType.INTEGER, 3), Item("金额", ItemDataType.CURRENCY, 6),
             Item("数值", ItemDataType.NUMERIC, 4), Item("出生日期", ItemDataType.DATE, required=True),
             Item("时间", ItemDataType.DATETIME), Item("重点", ItemDataType.LOGICAL), Item("通用", ItemDataType.GENERAL),
             Item("浮点", ItemDataType.FLOAT), Item("整数", ItemDataType.INTEGER))

_values = st.one_of(
    st.none(), st.just(""), st.booleans(), st.integers(-10**6, 10**6), st.integers(),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.text(alphabet="张三\t\u3000\x07\ud800\uffff 0123456789-:T", max_size=12),
    st.dates().map(str), st.datetimes().map(str), st.lists(st.integers(), max_size=2))
_payloads = st.dictionaries(st.sampled_from([item.name for item in ALL_KINDS] + ["银行卡号"]), _values, max_size=12)
_records = st.builds(Record, st.one_of(st.from_regex(r"[A-Za-z0-9._:-]{1,64}", fullmatch=True), st.text(max_size=3)),
                     st.integers(-1, MAX_SEQUENCE + 1), st.sampled_from(Operation), _payloads)


_fitting = st.fixed_dictionaries(
    {"姓名": st.text(alphabet="张三李四 \t\u3000\x07", min_size=1, max_size=10),
     "出生日期": st.dates().map(str) | st.just("2025-02-30") | st.just("２０２５-01-01")},
    optional={"人口数": st.integers(-2000, 2000) | st.floats(-2000, 2000), "金额": st.floats(-1e7, 1e7) | st.integers(),
              "数值": st.floats(0, 1) | st.just(1e-7) | st.just(12345.0), "重点": st.booleans() | st.just(0),
              "备注": st.text(max_size=5), "整数": st.integers() | st.just(3.0)})
"""Mostly records that fit, with values on either side of each item's limits: the fast path's yes."""


@settings(max_examples=600, deadline=None)
@given(_records | st.builds(Record, st.just("DB-1"), st.integers(1, 9), st.just(Operation.UPSERT), _fitting))
def test_the_prepared_schema_finds_what_payload_problems_finds(record):
    assert PayloadSchema(ALL_KINDS).problems(record, "records[3]") == payload_problems(ALL_KINDS, record, "records[3]")


def test_the_prepared_schema_clears_a_fitting_record_without_the_slow_path():
    record = Record("DB-1", 7, Operation.UPSERT, {"姓名": "张三", "出生日期": "1991-01-01", "金额": 1234.5, "人口数": 3,
                                                  "重点": False, "备注": "幸福小区\u3000一号楼"})
    assert PayloadSchema(ALL_KINDS)._clean(record)


_json_values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                         st.text())


@settings(max_examples=400, deadline=None)
@given(st.text(min_size=1, max_size=20), st.integers(0, MAX_SEQUENCE), st.sampled_from(Operation),
       st.dictionaries(st.text(max_size=6), _json_values, max_size=8), st.text(max_size=20), st.text(max_size=20))
def test_the_spelled_out_canonical_form_is_sorted_key_json(record_id, sequence, operation, payload, provider, resource):
    document = {"id": record_id, "sequence": sequence, "operation": operation.value, "provider": provider,
                "resource": resource, "payload": payload}
    expected = json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
    record = Record(record_id, sequence, operation, payload)
    assert canonical_record(provider, resource, record) == expected
    assert canonical_record(provider, resource, with_canonical(record)) == expected
