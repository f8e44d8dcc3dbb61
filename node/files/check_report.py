"""The household check's combined report as XML (``schemas/check-report.xsd``, namespace
``urn:exnode:check-report:v1``): every member, every target with its state, reason, findings, answerer's key
id and signature. The CSV form is ``node.services.checks.CheckApplication.export_csv``."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from lxml import etree

from catalog.checks import HouseholdCheck
from security.xml import load_schema

NAMESPACE = "urn:exnode:check-report:v1"
SCHEMA_PATH = Path(__file__).parent / "schemas" / "check-report.xsd"
_NS = f"{{{NAMESPACE}}}"


@cache
def report_schema() -> etree.XMLSchema:
    return load_schema(SCHEMA_PATH)


def report_xml(check: HouseholdCheck) -> bytes:
    root = etree.Element(f"{_NS}report", nsmap={None: NAMESPACE}, check_id=check.id, requester=check.requester_code,
                         purpose=check.purpose, authorisation=check.authorisation,
                         deadline=check.deadline.isoformat(), created_at=check.created_at.isoformat(),
                         complete="true" if check.complete else "false")
    for member in check.members:
        etree.SubElement(root, f"{_NS}member", id_number=member.id_number, name=member.name)
    for target in check.targets:
        element = etree.SubElement(root, f"{_NS}target", name=target.name, category=target.category,
                                   state=target.state.value)
        if target.answered_at is not None:
            element.set("answered_at", target.answered_at.isoformat())
        if target.kid:
            element.set("key_id", target.kid)
        if target.signature:
            element.set("signature", target.signature)
        if target.reason:
            etree.SubElement(element, f"{_NS}reason").text = target.reason
        for finding in target.findings:
            found = etree.SubElement(element, f"{_NS}finding", id_number=str(finding.get("id_number", "")))
            for name, value in dict(finding.get("items", {})).items():
                item = etree.SubElement(found, f"{_NS}item", name=str(name))
                item.text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    document = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    report_schema().assertValid(etree.fromstring(document))
    return document
