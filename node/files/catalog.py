"""Catalog import/export files: JSON and XML (validated against ``schemas/catalog.xsd``).

Reading never stops at the first bad entry: every entry comes back with its location in the file and
either its metadata or its problems, so the import can refuse the file and name every bad entry.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from catalog.errors import InvalidField
from catalog.interchange import metadata_from_dict, metadata_to_dict
from catalog.model import ResourceMetadata
from node.files.catalog_entries import MAX_FILE_BYTES, CatalogFileError, FileEntry
from node.files.catalog_xml import read_xml, write_xml

__all__ = ["MAX_FILE_BYTES", "CatalogFileError", "FileEntry", "detect_format", "read_catalog_file",
           "write_catalog_file"]

def detect_format(data: bytes) -> str:
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith((b"{", b"[")):
        return "json"
    if head.startswith(b"<") or data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "xml"
    raise CatalogFileError("the file is neither JSON (starts with { or [) nor XML (starts with <)")


def read_catalog_file(data: bytes, *, max_bytes: int = MAX_FILE_BYTES) -> list[FileEntry]:
    if len(data) > max_bytes:
        raise CatalogFileError(f"the file is {len(data)} bytes; at most {max_bytes} are accepted")
    if detect_format(data) == "json":
        return _read_json(data)
    return read_xml(data, max_bytes=max_bytes)


def _read_json(data: bytes) -> list[FileEntry]:
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        raise CatalogFileError(f"JSON must be UTF-8: {error}") from None
    except json.JSONDecodeError as error:
        raise CatalogFileError(f"not valid JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    entries = document.get("resources") if isinstance(document, dict) else document
    if not isinstance(entries, list):
        raise CatalogFileError('a JSON catalog is {"resources": [...]} or a list of resources')
    out = []
    for index, raw in enumerate(entries):
        code = raw.get("code", "") if isinstance(raw, dict) else ""
        try:
            parsed: ResourceMetadata | InvalidField = metadata_from_dict(raw)
        except InvalidField as error:
            parsed = error
        out.append(FileEntry(f"resources[{index}]", code if isinstance(code, str) else "", parsed))
    return out


def write_catalog_file(metas: Sequence[ResourceMetadata], fmt: str) -> bytes:
    if fmt == "json":
        document = {"resources": [metadata_to_dict(m) for m in metas]}
        return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    if fmt == "xml":
        return write_xml(metas)
    raise ValueError(f"unknown format {fmt!r} (json or xml)")
