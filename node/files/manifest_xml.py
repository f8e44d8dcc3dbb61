"""The day manifest as XML for the ministry adapter (日清单), valid against ``schemas/manifest.xsd``
(namespace ``urn:exnode:manifest:v1``). The signed bytes are the canonical JSON ``document`` carried
inside, so the XML's spelling (namespaces, whitespace) never affects verification."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from lxml import etree

from node.storage.pull_repository import StoredDayManifest
from security.xml import load_schema, parse_untrusted

SCHEMA_PATH = Path(__file__).parent / "schemas" / "manifest.xsd"
NAMESPACE = "urn:exnode:manifest:v1"
MAX_MANIFEST_BYTES = 16 * 1024 * 1024


@cache
def manifest_schema() -> etree.XMLSchema:
    return load_schema(SCHEMA_PATH)


def _element(parent: etree._Element, name: str, text: object) -> etree._Element:
    element = etree.SubElement(parent, f"{{{NAMESPACE}}}{name}")
    element.text = str(text)
    return element


def day_manifest_xml(manifest: StoredDayManifest, algorithm: str) -> bytes:
    document = json.loads(manifest.document)
    root = etree.Element(f"{{{NAMESPACE}}}dayManifest", nsmap={None: NAMESPACE})
    for name in ("version", "node", "day", "timezone"):
        root.set(name, str(document[name]))
    for name, key in (("from", "from"), ("until", "until"), ("recordCount", "record_count"),
                      ("merkleRoot", "merkle_root"), ("firstPosition", "first_position"),
                      ("lastPosition", "last_position"), ("highWater", "high_water"), ("closedAt", "closed_at")):
        _element(root, name, document[key])
    resources = etree.SubElement(root, f"{{{NAMESPACE}}}resources")
    for entry in document["resources"]:
        etree.SubElement(resources, f"{{{NAMESPACE}}}resource", provider=entry["provider"], code=entry["resource"],
                         records=str(entry["records"]))
    _element(root, "document", manifest.document)
    signature = _element(root, "signature", manifest.signature.hex())
    signature.set("kid", manifest.kid)
    signature.set("algorithm", algorithm)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def read_day_manifest_xml(data: bytes) -> tuple[str, str, bytes]:
    """Parse (hardened, schema-validated) and return the signed document, the key id and the signature."""
    tree = parse_untrusted(data, schema=manifest_schema(), max_bytes=MAX_MANIFEST_BYTES, what="day manifest")
    root = tree.getroot()
    document = root.findtext(f"{{{NAMESPACE}}}document") or ""
    signature = root.find(f"{{{NAMESPACE}}}signature")
    assert signature is not None  # the schema requires it
    return document, signature.get("kid", ""), bytes.fromhex(signature.text or "")
