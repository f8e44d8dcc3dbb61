"""The XML catalog file: schema-valid round trip, and every problem reported with its line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from lxml import etree

from catalog.errors import InvalidField
from catalog.interchange import metadata_from_dict
from catalog.model import (
    Classification,
    FormatClass,
    ItemDataType,
    OpenType,
    ShareMethodClass,
    ShareMethodType,
    ShareType,
    UpdateCycle,
)
from node.files.catalog import CatalogFileError, read_catalog_file, write_catalog_file
from node.files.catalog_xml import SCHEMA_PATH, catalog_schema, read_xml, write_xml

SAMPLE = Path(__file__).parents[2] / "node" / "sample" / "catalog.json"


def sample_metas():
    return [metadata_from_dict(r) for r in json.loads(SAMPLE.read_text("utf-8"))["resources"]]


def test_the_sample_catalog_round_trips_through_xml():
    metas = sample_metas()
    data = write_xml(metas)
    assert catalog_schema().validate(etree.fromstring(data))
    entries = read_xml(data)
    assert [e.parsed for e in entries] == metas
    assert all(re.fullmatch(r"line \d+", e.location) for e in entries)


def test_json_and_xml_read_to_the_same_metadata():
    metas = sample_metas()
    from_json = [e.parsed for e in read_catalog_file(write_catalog_file(metas, "json"))]
    from_xml = [e.parsed for e in read_catalog_file(write_catalog_file(metas, "xml"))]
    assert from_json == from_xml == metas


def test_chinese_text_is_written_as_utf8_not_escaped():
    data = write_xml(sample_metas()[:1])
    assert "城乡最低生活保障对象信息".encode() in data


def test_schema_errors_list_every_problem_with_its_line():
    text = write_xml(sample_metas()[:3]).decode()
    text = text.replace("<classification>DEPARTMENTAL</classification>", "<classification>SECRET</classification>")
    text = text.replace("<code>311140001/000001</code>", "<code>not-a-code</code>", 1)
    with pytest.raises(CatalogFileError) as caught:
        read_catalog_file(text.encode())
    message = str(caught.value)
    assert message.count("SECRET") >= 3 and "not-a-code" in message
    assert len(re.findall(r"line \d+:", message)) >= 4


def test_a_domain_problem_is_reported_per_entry_with_its_line():
    metas = sample_metas()[:2]
    text = write_xml(metas).decode()
    second = text.rindex("<resource>")
    code = metas[1].provider_code
    bad_code = code[:-1] + ("X" if code[-1] != "X" else "Y")
    text = text[:second] + text[second:].replace(code, bad_code, 1)
    entries = read_xml(text.encode())
    assert not isinstance(entries[0].parsed, InvalidField)
    bad = entries[1].parsed
    assert isinstance(bad, InvalidField) and "provider_code" in str(bad)
    assert entries[1].location == f"line {text[:text.index(metas[1].code)].count(chr(10))}"


def test_an_unknown_element_is_refused_by_the_schema():
    text = write_xml(sample_metas()[:1]).decode().replace("<summary>", "<secret>x</secret><summary>")
    with pytest.raises(CatalogFileError, match="secret"):
        read_catalog_file(text.encode())


@pytest.mark.parametrize("simple_type, enum", [
    ("Classification", Classification), ("FormatClass", FormatClass), ("ItemDataType", ItemDataType),
    ("ShareType", ShareType), ("ShareMethodClass", ShareMethodClass), ("ShareMethodType", ShareMethodType),
    ("OpenType", OpenType), ("UpdateCycle", UpdateCycle),
])
def test_schema_enumerations_match_the_domain(simple_type: str, enum):
    xsd = etree.parse(str(SCHEMA_PATH))
    ns = {"xs": "http://www.w3.org/2001/XMLSchema"}
    values = xsd.xpath(f"//xs:simpleType[@name='{simple_type}']//xs:enumeration/@value", namespaces=ns)
    assert values == [m.value for m in enum]
