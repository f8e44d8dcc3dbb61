"""Hostile XML is refused before anything is parsed into the catalog, with a reason that names it."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.files.catalog import CatalogFileError, read_catalog_file
from security.xml import InvalidXml, UnsafeXml, parse_untrusted

LIMIT = 1024 * 1024
CATALOG_OPEN = '<catalog xmlns="urn:exnode:catalog:v1" version="1">'

BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    + "".join(f' <!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">\n'
              for i in range(1, 10))
    + "]>\n" + CATALOG_OPEN + "&lol9;</catalog>"
)


def unsafe(data: bytes) -> UnsafeXml:
    with pytest.raises(UnsafeXml) as caught:
        parse_untrusted(data, schema=None, max_bytes=LIMIT)
    return caught.value


def test_billion_laughs_is_refused_as_a_dtd():
    error = unsafe(BILLION_LAUGHS.encode())
    assert error.reason == "dtd" and "DTD" in str(error) and "line 2" in str(error)


def test_quadratic_blowup_entity_is_refused():
    big = "A" * 50_000
    doc = f'<!DOCTYPE r [<!ENTITY a "{big}">]><r>{"&a;" * 1000}</r>'
    assert unsafe(doc.encode()).reason == "dtd"


def test_external_entity_never_reads_the_file(tmp_path: Path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    doc = f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]><r>&x;</r>'
    error = unsafe(doc.encode())
    assert "TOP-SECRET" not in str(error)


@pytest.mark.parametrize("doc", [
    '<!DOCTYPE r SYSTEM "http://127.0.0.1:9/evil.dtd"><r/>',
    '<!DOCTYPE r PUBLIC "-//X//Y" "file:///etc/passwd"><r/>',
    '<!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p.dtd"> %p;]><r/>',
    '<!doctype r><r/>',
    '<?xml version="1.0"?>\n\n<!  DOCTYPE r><r/>',
])
def test_external_dtds_and_parameter_entities_are_refused(doc: str):
    assert unsafe(doc.encode()).reason == "dtd"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_a_doctype_hidden_in_a_wide_encoding_is_found(encoding: str):
    doc = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY a "b">]><r>&a;</r>'
    assert unsafe(doc.encode(encoding)).reason == "dtd"


def test_an_exotic_encoding_that_could_hide_markup_is_refused():
    doc = b'<?xml version="1.0" encoding="UTF-7"?>+ADw-!DOCTYPE r+AD4-<r/>'
    error = unsafe(doc)
    assert error.reason == "encoding" and "UTF-7" in str(error)


def test_an_oversized_document_is_refused_before_parsing():
    doc = b"<r>" + b"x" * (LIMIT + 1) + b"</r>"
    error = unsafe(doc)
    assert error.reason == "too_large" and str(LIMIT) in str(error)


def test_deep_nesting_is_refused():
    depth = 5000
    doc = ("<a>" * depth + "</a>" * depth).encode()
    assert unsafe(doc).reason == "too_deep"


def test_xinclude_is_never_processed(tmp_path: Path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    doc = (f'<r xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="file://{secret}" parse="text"/></r>')
    tree = parse_untrusted(doc.encode(), schema=None, max_bytes=LIMIT)
    assert b"TOP-SECRET" not in __import__("lxml.etree", fromlist=["tostring"]).tostring(tree)


@pytest.mark.parametrize("doc, expected", [
    (b"<r><unclosed></r>", "line 1"),
    (b"<r>\n<a>\n</b></r>", "line 3"),
    (b"   ", "empty"),
    (b"<r>&undefined;</r>", "undefined"),
])
def test_malformed_xml_names_the_problem_and_line(doc: bytes, expected: str):
    with pytest.raises(InvalidXml) as caught:
        parse_untrusted(doc, schema=None, max_bytes=LIMIT)
    assert expected in str(caught.value).lower()


def test_a_hostile_catalog_file_is_refused_with_a_one_line_reason():
    with pytest.raises(CatalogFileError, match="DTD"):
        read_catalog_file(BILLION_LAUGHS.encode())


def test_an_oversized_catalog_file_is_refused():
    with pytest.raises(CatalogFileError, match="at most 1000"):
        read_catalog_file(b"<" + b" " * 2000, max_bytes=1000)
