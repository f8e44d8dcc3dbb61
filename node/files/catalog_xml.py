"""The XML form of a catalog file (``schemas/catalog.xsd``, namespace ``urn:exnode:catalog:v1``).

Elements are named like the keys of the dict form (catalog/interchange.py), so XML goes through the same
``metadata_from_dict`` as JSON and both formats report problems the same way. Parsing is the hardened
one of ``security.xml``: the file is refused before anything reaches the catalog if it is oversized,
declares a DTD or entities, is malformed or breaks the schema.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from lxml import etree

from catalog.errors import InvalidField
from catalog.interchange import FIELDS, metadata_from_dict, metadata_to_dict
from catalog.model import ResourceMetadata
from node.files.catalog_entries import MAX_FILE_BYTES, CatalogFileError, FileEntry
from security.xml import XmlRejected, load_schema, parse_untrusted

NAMESPACE = "urn:exnode:catalog:v1"
SCHEMA_PATH = Path(__file__).parent / "schemas" / "catalog.xsd"
_NS = f"{{{NAMESPACE}}}"
_LISTS = {"items": "item", "related_codes": "code", "keywords": "keyword"}


@cache
def catalog_schema() -> etree.XMLSchema:
    return load_schema(SCHEMA_PATH)


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname


def _text(element: etree._Element) -> str:
    return (element.text or "").strip()


def _item(element: etree._Element) -> dict[str, Any]:
    item: dict[str, Any] = {}
    for child in element:
        name = _local(child)
        value = _text(child)
        if name == "length":
            item[name] = int(value)  # the schema guarantees a non-negative integer
        elif name in ("required", "key"):
            item[name] = value in ("true", "1")
        else:
            item[name] = value
    return item


def _resource_dict(element: etree._Element) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for child in element:
        name = _local(child)
        if name == "items":
            data[name] = [_item(item) for item in child]
        elif name in _LISTS:
            data[name] = [_text(value) for value in child]
        else:
            data[name] = _text(child)
    return data


def read_xml(data: bytes, *, max_bytes: int = MAX_FILE_BYTES) -> list[FileEntry]:
    """Every ``<resource>`` with its line and either its metadata or its problems.

    Raises CatalogFileError when the document as a whole is refused (unsafe, malformed, schema-invalid);
    the message lists every problem with its line.
    """
    try:
        tree = parse_untrusted(data, schema=catalog_schema(), max_bytes=max_bytes, what="catalog XML file")
    except XmlRejected as error:
        raise CatalogFileError(str(error)) from None
    entries = []
    for element in tree.getroot().iterchildren(f"{_NS}resource"):
        raw = _resource_dict(element)
        try:
            parsed: ResourceMetadata | InvalidField = metadata_from_dict(raw)
        except InvalidField as error:
            parsed = error
        entries.append(FileEntry(f"line {element.sourceline}", str(raw.get("code", "")), parsed))
    return entries


def write_xml(metas: Sequence[ResourceMetadata]) -> bytes:
    """A UTF-8 document valid against the schema; ``read_xml(write_xml(m))`` gives back ``m``."""
    root = etree.Element(f"{_NS}catalog", nsmap={None: NAMESPACE}, version="1")
    for meta in metas:
        resource = etree.SubElement(root, f"{_NS}resource")
        data = metadata_to_dict(meta)
        for name in FIELDS:
            if name not in data:
                continue
            value = data[name]
            child = etree.SubElement(resource, f"{_NS}{name}")
            if name == "items":
                for item in value:
                    item_element = etree.SubElement(child, f"{_NS}item")
                    for key in ("name", "data_type", "length", "required", "description", "key"):
                        if key in item:
                            text = item[key]
                            if isinstance(text, bool):
                                text = "true" if text else "false"
                            etree.SubElement(item_element, f"{_NS}{key}").text = str(text)
            elif name in _LISTS:
                for text in value:
                    etree.SubElement(child, f"{_NS}{_LISTS[name]}").text = text
            else:
                child.text = str(value)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
