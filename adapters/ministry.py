"""Ministry platform codec (民政部平台): the envelope as an XML document, ``schemas/ministry-envelope.xsd``.

Each item keeps its JSON type in a ``type`` attribute (string, number, boolean, null), because XML text
alone cannot tell the number 1 from the text "1" or null from "", and the records' hashes depend on the
difference. Numbers are written as Python writes them (``repr``), which reads back to the same value.

Decoding is the hardened parse of ``security.xml``: the document is refused before any record is looked at
if it is too large, declares a DTD or entities, is malformed or breaks the schema.
"""

from __future__ import annotations

import base64
import binascii
import re
from functools import cache
from pathlib import Path
from typing import Any

from lxml import etree

from adapters.envelope import (
    FORMAT_VERSION,
    MAX_ENVELOPE_BYTES,
    Envelope,
    EnvelopeError,
    check_envelope,
    check_size,
    parse_created_at,
)
from catalog.records import Operation, Record
from security.merkle import Proof, SignedBatch
from security.xml import XmlRejected, load_schema, parse_untrusted

CONTENT_TYPE = "application/xml"
NAMESPACE = "urn:exnode:envelope:v1"
SCHEMA_PATH = Path(__file__).parent / "schemas" / "ministry-envelope.xsd"
_NS = f"{{{NAMESPACE}}}"
_HEADER = (("batchId", "batch_id"), ("nodeId", "node_id"), ("providerCode", "provider_code"),
           ("resourceCode", "resource_code"), ("consumerCode", "consumer_code"), ("createdAt", "created_at"))
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?P<fraction>\.[0-9]+)?(?P<exponent>[eE][+-]?[0-9]+)?")
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@cache
def envelope_schema() -> etree.XMLSchema:
    return load_schema(SCHEMA_PATH)


def _xml_text(text: str, field: str) -> str:
    bad = _NOT_XML_CHAR.search(text)
    if bad:
        raise EnvelopeError(field, f"holds the character U+{ord(bad.group()):04X}, which XML 1.0 cannot carry")
    return text


def _typed(value: Any, field: str) -> tuple[str, str | None]:
    """The ``type`` attribute and text of an item value."""
    if value is None:
        return "null", None
    if isinstance(value, bool):
        return "boolean", "true" if value else "false"
    if isinstance(value, int):
        return "number", str(value)
    if isinstance(value, float):
        return "number", repr(value)
    return "string", _xml_text(value, field)


def encode(envelope: Envelope, *, checked: bool = False) -> bytes:
    """A UTF-8 XML document valid against the schema; ``decode(encode(e)) == e``. ``checked``: as
    ``regional.encode``."""
    if not checked:
        check_envelope(envelope)
    root = etree.Element(f"{_NS}exchangeEnvelope", nsmap={None: NAMESPACE}, version=str(FORMAT_VERSION))
    header = etree.SubElement(root, f"{_NS}header")
    for element, attribute in _HEADER:
        value = getattr(envelope, attribute)
        etree.SubElement(header, f"{_NS}{element}").text = value.isoformat() if element == "createdAt" else value
    records = etree.SubElement(root, f"{_NS}records")
    for index, record in enumerate(envelope.records):
        record_element = etree.SubElement(records, f"{_NS}record", id=record.id, sequence=str(record.sequence),
                                          operation=record.operation.value)
        for name, value in record.payload.items():
            field = f"records[{index}].payload.{name}"
            kind, text = _typed(value, field)
            item = etree.SubElement(record_element, f"{_NS}item", name=_xml_text(name, field), type=kind)
            if text:
                item.text = text
    signed = envelope.signed
    signature = etree.SubElement(root, f"{_NS}signature", kid=_xml_text(signed.kid, "signed.kid"),
                                 algorithm=_xml_text(signed.algorithm, "signed.algorithm"),
                                 treeSize=str(signed.tree_size), root=signed.root.hex())
    signature.text = base64.b64encode(signed.signature).decode("ascii")
    if envelope.proof is not None:
        proof = etree.SubElement(root, f"{_NS}proof", index=str(envelope.proof.index),
                                 treeSize=str(envelope.proof.tree_size))
        for value in envelope.proof.path:
            etree.SubElement(proof, f"{_NS}hash").text = value.hex()
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _value(kind: str, text: str, field: str) -> Any:
    if kind == "string":
        return text
    if kind == "null":
        if text:
            raise EnvelopeError(field, "is typed null but has text")
        return None
    if kind == "boolean":
        if text not in ("true", "false"):
            raise EnvelopeError(field, f"{text!r} is not true or false")
        return text == "true"
    match = _JSON_NUMBER.fullmatch(text)
    if match is None:
        raise EnvelopeError(field, f"{text!r} is not a number")
    try:
        number: int | float = float(text) if match["fraction"] or match["exponent"] else int(text)
    except ValueError as error:  # more digits than Python converts
        raise EnvelopeError(field, f"is not a usable number: {error}") from None
    if isinstance(number, float) and number in (float("inf"), float("-inf")):
        raise EnvelopeError(field, f"{text!r} is too large for a number")
    return number


def _record(element: etree._Element, index: int) -> Record:
    payload: dict[str, Any] = {}
    for item in element:
        name = item.get("name")
        field = f"records[{index}].payload.{name}"
        payload[name] = _value(item.get("type"), item.text or "", f"{field} (line {item.sourceline})")
    # The schema guarantees the attributes' presence and shape (id pattern, sequence range, operation enum).
    return Record(element.get("id"), int(element.get("sequence")), Operation(element.get("operation")), payload)


def decode(data: bytes, *, max_bytes: int = MAX_ENVELOPE_BYTES) -> Envelope:
    """The envelope of a ministry XML document; EnvelopeError naming the problem when it is refused.

    Hostile or malformed documents are refused with field ``document``; the ``security.xml`` rejection is
    kept as ``__cause__`` (its ``reason`` tells an attack — DTD, entity, size — from a mere mistake).
    """
    check_size(data, max_bytes)
    try:
        tree = parse_untrusted(data, schema=envelope_schema(), max_bytes=max_bytes, what="ministry envelope")
    except XmlRejected as rejected:
        raise EnvelopeError("document", str(rejected)) from rejected
    root = tree.getroot()
    header = root.find(f"{_NS}header")
    fields: dict[str, Any] = {attribute: header.findtext(f"{_NS}{element}") or ""
                              for element, attribute in _HEADER}
    fields["created_at"] = parse_created_at(fields["created_at"])
    records = tuple(_record(element, index)
                    for index, element in enumerate(root.find(f"{_NS}records").iterchildren(f"{_NS}record")))
    signature = root.find(f"{_NS}signature")
    try:
        signature_bytes = base64.b64decode("".join((signature.text or "").split()), validate=True)
    except binascii.Error:
        raise EnvelopeError("signed.signature", "is not base64") from None
    signed = SignedBatch(int(signature.get("treeSize")), bytes.fromhex(signature.get("root")), signature.get("kid"),
                         signature.get("algorithm"), signature_bytes)
    proof_element = root.find(f"{_NS}proof")
    proof = None if proof_element is None else Proof(
        int(proof_element.get("index")), int(proof_element.get("treeSize")),
        tuple(bytes.fromhex(h.text or "") for h in proof_element.iterchildren(f"{_NS}hash")))
    return check_envelope(Envelope(records=records, signed=signed, proof=proof, **fields))
