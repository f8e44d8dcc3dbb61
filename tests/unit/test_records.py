"""Records against a resource's items: what ingest refuses before anything is stored, so that every
stored record can also be relayed in every platform format."""

from __future__ import annotations

import pytest

from catalog.model import Item, ItemDataType
from catalog.records import MAX_SEQUENCE, Operation, Record, payload_problems

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
