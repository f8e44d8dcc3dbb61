"""Ministry platform codec (民政部平台): the envelope as an XML document, ``schemas/ministry-envelope.xsd``.

Each item keeps its JSON type in a ``type`` attribute (string, number, boolean, null), because XML text
alone cannot tell the number 1 from the text "1" or null from "", and the records' hashes depend on the
difference. Numbers are written as Python writes them (``repr``), which reads back to the same value.

Decoding is the hardened parse of ``security.xml``: the document is refused before any record is looked at
if it is too large, declares a DTD or entities, is malformed or breaks the schema.

A record under an open objection (校核纠错) carries ``disputed="true"``; the attribute is left off otherwise.
"""

from __future__ import annotations

import base64
import binascii
import re
from functools import cache
from pathlib import Path
from typing import Any

from lxml import etree

from adapters.codecs.envelope import (
    FORMAT_VERSION,
    MAX_ENVELOPE_BYTES,
    Envelope,
    EnvelopeError,
    Hop,
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
        if record.id in envelope.disputed:
            record_element.set("disputed", "true")
        for name, value in record.payload.items():
            field = f"records[{index}].payload.{name}"
            kind, text = _typed(value, field)
            item = etree.SubElement(record_element, f"{_NS}item", name=_xml_text(name, field), type=kind)
            if text:
                item.text = text
    _signature_element(root, envelope.signed, "signed")
    if envelope.proof is not None:
        _proof_element(root, envelope.proof)
    if envelope.hops:
        hops = etree.SubElement(root, f"{_NS}hops")
        for index, hop in enumerate(envelope.hops):
            element = etree.SubElement(hops, f"{_NS}hop", nodeId=_xml_text(hop.node_id, f"hops[{index}].node_id"),
                                       batchId=_xml_text(hop.batch_id, f"hops[{index}].batch_id"))
            _signature_element(element, hop.signed, f"hops[{index}].signed")
            _proof_element(element, hop.proof)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _signature_element(parent: etree._Element, signed: SignedBatch, field: str) -> None:
    signature = etree.SubElement(parent, f"{_NS}signature", kid=_xml_text(signed.kid, f"{field}.kid"),
                                 algorithm=_xml_text(signed.algorithm, f"{field}.algorithm"),
                                 treeSize=str(signed.tree_size), root=signed.root.hex())
    signature.text = base64.b64encode(signed.signature).decode("ascii")


def _proof_element(parent: etree._Element, value: Proof) -> None:
    proof = etree.SubElement(parent, f"{_NS}proof", index=str(value.index), treeSize=str(value.tree_size))
    for digest in value.path:
        etree.SubElement(proof, f"{_NS}hash").text = digest.hex()


def _signed(signature: etree._Element, field: str) -> SignedBatch:
    try:
        signature_bytes = base64.b64decode("".join((signature.text or "").split()), validate=True)
    except (binascii.Error, ValueError):  # ValueError: a character outside ASCII
        raise EnvelopeError(f"{field}.signature", "is not base64") from None
    return SignedBatch(int(signature.get("treeSize")), bytes.fromhex(signature.get("root")), signature.get("kid"),
                       signature.get("algorithm"), signature_bytes)


def _proof(element: etree._Element) -> Proof:
    return Proof(int(element.get("index")), int(element.get("treeSize")),
                 tuple(bytes.fromhex(h.text or "") for h in element.iterchildren(f"{_NS}hash")))


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
    elements = list(root.find(f"{_NS}records").iterchildren(f"{_NS}record"))
    records = tuple(_record(element, index) for index, element in enumerate(elements))
    disputed = tuple(record.id for record, element in zip(records, elements, strict=True)
                     if element.get("disputed") in ("true", "1"))
    signed = _signed(root.find(f"{_NS}signature"), "signed")
    proof_element = root.find(f"{_NS}proof")
    proof = None if proof_element is None else _proof(proof_element)
    hops_element = root.find(f"{_NS}hops")
    hops = () if hops_element is None else tuple(
        Hop(hop.get("nodeId"), hop.get("batchId"), _signed(hop.find(f"{_NS}signature"), f"hops[{index}].signed"),
            _proof(hop.find(f"{_NS}proof")))
        for index, hop in enumerate(hops_element.iterchildren(f"{_NS}hop")))
    return check_envelope(Envelope(records=records, signed=signed, proof=proof, hops=hops, disputed=disputed,
                                   **fields))
