"""The bundled sample catalog (node/sample/catalog.json) is a valid, realistic civil-affairs catalog."""

from __future__ import annotations

import json
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest

import node
from catalog.interchange import metadata_from_dict, metadata_to_dict
from catalog.model import Classification, ResourceMetadata, ShareType

SAMPLE = Path(node.__file__).parent / "sample" / "catalog.json"

BUSINESS_AREAS = (
    # social assistance
    "最低生活保障", "特困人员", "临时救助", "低收入人口",
    # elderly care
    "养老机构", "高龄津贴", "居家养老",
    # social organisations
    "社会组织法人登记", "社会组织年度检查", "社会组织活动异常名录",
    # marriage registration
    "结婚登记", "离婚登记", "婚姻登记机关",
    # funeral services
    "殡葬服务机构", "火化", "公墓",
    # administrative divisions and place names
    "行政区划", "地名", "界线",
    # volunteering
    "志愿者", "志愿服务组织", "志愿服务时长",
    # social work
    "社会工作者", "社会工作服务机构",
    # child welfare
    "孤儿", "事实无人抚养儿童", "留守儿童",
    # disability subsidies
    "困难残疾人生活补贴", "重度残疾人护理补贴",
    # community governance
    "城乡社区", "村（居）民委员会",
    # charity
    "慈善组织", "公开募捐",
)


@cache
def _raw() -> tuple[dict[str, Any], ...]:
    data = json.loads(SAMPLE.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and set(data) == {"resources"}
    return tuple(data["resources"])


@cache
def _resources() -> tuple[ResourceMetadata, ...]:
    return tuple(metadata_from_dict(entry) for entry in _raw())


def test_sample_catalog_has_at_least_45_resources():
    assert len(_raw()) >= 45


@pytest.mark.parametrize("index", range(len(_raw())))
def test_every_sample_resource_is_valid_metadata(index):
    entry = _raw()[index]
    meta = metadata_from_dict(entry)  # raises InvalidField listing every problem
    assert metadata_to_dict(meta) == entry, "entries are in the exact metadata_to_dict form"


def test_sample_resource_codes_are_unique():
    codes = Counter(m.code for m in _resources())
    assert [code for code, n in codes.items() if n > 1] == []


def test_related_codes_point_to_earlier_resources():
    seen: set[str] = set()
    for meta in _resources():
        missing = [c for c in meta.related_codes if c not in seen]
        assert not missing, f"{meta.code} relates to {missing}, which do not appear earlier"
        seen.add(meta.code)
    assert sum(1 for m in _resources() if m.related_codes) >= 6


def test_sample_has_eight_providers_each_with_one_code():
    codes_by_name: dict[str, set[str]] = {}
    for meta in _resources():
        codes_by_name.setdefault(meta.provider_name, set()).add(meta.provider_code)
    assert {name: codes for name, codes in codes_by_name.items() if len(codes) > 1} == {}
    assert len({m.provider_code for m in _resources()}) >= 8
    assert len(codes_by_name) == len({m.provider_code for m in _resources()}), "one name per provider code"


@pytest.mark.parametrize("area", BUSINESS_AREAS)
def test_every_business_area_is_in_the_sample(area):
    assert any(area in m.name for m in _resources()), f"no resource named with {area!r}"


def test_every_share_type_occurs_with_at_least_four_not_shared():
    counts = Counter(m.share_type for m in _resources())
    assert set(counts) == set(ShareType)
    assert counts[ShareType.NOT_SHARED] >= 4


def test_every_classification_occurs():
    assert {m.classification for m in _resources()} == set(Classification)
