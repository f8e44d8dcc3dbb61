"""Records (数据记录): one row of a resource's data, checked against the resource's 信息项.

A record's canonical form (sorted-key JSON, UTF-8) is what is hashed into a batch's Merkle tree, so a
provider, the node, every platform and the nightly pull compute the same record hash from the same
record, whatever the wire format was.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from json.encoder import encode_basestring
from typing import Any

from catalog.errors import FieldProblem
from catalog.model import Item, ItemDataType

MAX_RECORD_ID = 64
MAX_PAYLOAD_BYTES = 64 * 1024
_RECORD_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class Operation(StrEnum):
    UPSERT = "UPSERT"
    DELETE = "DELETE"


@dataclass(frozen=True)
class Record:
    id: str
    sequence: int
    operation: Operation
    payload: Mapping[str, Any]
    """Item name → value (text, number, true/false or null), as JSON carries them."""
    payload_json: str | None = field(default=None, compare=False, repr=False)
    """``canonical_payload(payload)`` when it was already computed (``with_canonical``): the ingest path
    serialises each payload once for the Merkle leaf, the stored row and the wire, not once for each."""

    def canonical(self, provider_code: str, resource_code: str) -> bytes:
        return canonical_record(provider_code, resource_code, self)


def canonical_payload(payload: Mapping[str, Any]) -> str:
    """The payload as it sits in a record's canonical form: sorted keys, compact, Chinese unescaped."""
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def with_canonical(record: Record) -> Record:
    """The record carrying its payload's canonical text, so later steps do not serialise it again."""
    if record.payload_json is not None:
        return record
    return Record(record.id, record.sequence, record.operation, record.payload, canonical_payload(record.payload))


MAX_SEQUENCE = (1 << 63) - 1
"""Sequence numbers fit a signed 64-bit database column."""


def canonical_record(provider_code: str, resource_code: str, record: Record) -> bytes:
    """Sorted-key compact JSON of the record with its provider and resource, UTF-8."""
    if type(record.sequence) is not int or type(record.id) is not str:
        document = {"id": record.id, "sequence": record.sequence, "operation": record.operation.value,
                    "provider": provider_code, "resource": resource_code, "payload": dict(record.payload)}
        return json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")
    payload = record.payload_json if record.payload_json is not None else canonical_payload(record.payload)
    return canonical_from_parts(provider_code, resource_code, record.id, record.sequence, record.operation.value,
                                payload)


def canonical_from_parts(provider_code: str, resource_code: str, record_id: str, sequence: int, operation: str,
                         payload_json: str) -> bytes:
    """``canonical_record`` spelled out from the payload's canonical text: the top-level keys in their
    sorted order, strings escaped as ``json.dumps(ensure_ascii=False)`` escapes them. Why: the payload is
    the only costly part, and the ingest and the nightly pull already hold its text."""
    string = encode_basestring
    return (f'{{"id":{string(record_id)},"operation":{string(operation)},"payload":{payload_json},'
            f'"provider":{string(provider_code)},"resource":{string(resource_code)},"sequence":{int(sequence)}}}'
            ).encode()


def content_hash(provider_code: str, resource_code: str, record: Record) -> bytes:
    """SHA-256 of the canonical form: the same id with other content is another hash (refused), the
    same content a duplicate (accepted, nothing changes)."""
    return hashlib.sha256(canonical_record(provider_code, resource_code, record)).digest()


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _digits(number: Decimal) -> int:
    sign, digits, exponent = number.as_tuple()
    return max(len(digits), -exponent if isinstance(exponent, int) and exponent < 0 else 0)


_XML_UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
"""Control characters XML 1.0 cannot carry, and lone surrogates (JSON's "\\ud800" parses to one), which no
UTF-8 encoder can write: a value with either could be stored but never relayed."""


def value_problem(item: Item, value: Any) -> str | None:
    """Why ``value`` does not fit the item, or None. Null is handled by the caller (required or not).
    Values are JSON scalars only, and text without control characters, so every platform format (the
    ministry's XML included) can carry every accepted record."""
    kind = item.data_type
    if isinstance(value, str) and _XML_UNSAFE.search(value):
        return "contains control characters or lone surrogates"
    if isinstance(value, float) and not math.isfinite(value):
        return "is not a finite number"
    if kind in (ItemDataType.STRING, ItemDataType.MEMO):
        if not isinstance(value, str):
            return f"must be text ({kind.label}), not {type(value).__name__}"
        if kind is ItemDataType.STRING and item.length and len(value) > item.length:
            return f"is {len(value)} characters, the item allows {item.length}"
        return None
    if kind is ItemDataType.LOGICAL:
        return None if isinstance(value, bool) else f"must be true or false ({kind.label})"
    if kind is ItemDataType.DATE:
        if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            try:
                dt.date.fromisoformat(value)
                return None
            except ValueError:
                pass
        return f"{value!r} is not a date YYYY-MM-DD ({kind.label})"
    if kind is ItemDataType.DATETIME:
        if isinstance(value, str):
            try:
                dt.datetime.fromisoformat(value)
                return None
            except ValueError:
                pass
        return f"{value!r} is not an ISO 8601 date-time ({kind.label})"
    if kind is ItemDataType.GENERAL:
        return None if isinstance(value, str | int | float | bool) else "must be text, a number or true/false"
    number = _number(value)
    if number is None:
        return f"{value!r} is not a number ({kind.label})"
    if kind is ItemDataType.INTEGER and number != number.to_integral_value():
        return f"{value!r} is not a whole number ({kind.label})"
    if kind in (ItemDataType.NUMERIC, ItemDataType.CURRENCY, ItemDataType.INTEGER) and item.length \
            and _digits(number) > item.length:
        return f"{value!r} has more than {item.length} digits"
    return None


def payload_problems(items: Sequence[Item], record: Record, where: str = "") -> list[FieldProblem]:
    """Every way the record breaks the resource's items: unknown items, missing required ones, types and
    lengths. A DELETE needs only its id; if it carries a payload anyway, that payload must fit the items
    (types and lengths; nothing is required), because it is stored and relayed like any other."""
    prefix = f"{where}." if where else ""
    problems: list[FieldProblem] = []
    if not _RECORD_ID.fullmatch(record.id or ""):
        problems.append(FieldProblem(f"{prefix}id", f"{record.id!r} is not a record id (1-64 of A-Z a-z 0-9 . _ : -)"))
    if not 1 <= record.sequence <= MAX_SEQUENCE:
        problems.append(FieldProblem(f"{prefix}sequence", f"must be from 1 to {MAX_SEQUENCE}"))
    if record.operation is Operation.DELETE and not record.payload:
        return problems
    by_name = {item.name: item for item in items}
    for name in record.payload:
        if name not in by_name:
            problems.append(FieldProblem(f"{prefix}payload.{name}", "is not an item of the resource"))
    for item in items:
        value = record.payload.get(item.name)
        if value is None or value == "":
            if item.required and record.operation is not Operation.DELETE:
                problems.append(FieldProblem(f"{prefix}payload.{item.name}", "is required"))
            continue
        problem = value_problem(item, value)
        if problem:
            problems.append(FieldProblem(f"{prefix}payload.{item.name}", problem))
    return problems


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _plain_text(value: str) -> bool:
    # isprintable() is False for every character _XML_UNSAFE matches (controls, surrogates, non-characters),
    # and a C loop: the regex runs only for text it cannot clear (a tab, an ideographic space …).
    return value.isprintable() or not _XML_UNSAFE.search(value)


_TEXT, _MEMO, _LOGICAL, _DATE_KIND, _INTEGER, _DECIMAL, _OTHER = range(7)
_FAST_KINDS = {ItemDataType.STRING: _TEXT, ItemDataType.MEMO: _MEMO, ItemDataType.LOGICAL: _LOGICAL,
               ItemDataType.DATE: _DATE_KIND, ItemDataType.INTEGER: _INTEGER, ItemDataType.NUMERIC: _DECIMAL,
               ItemDataType.CURRENCY: _DECIMAL}


def _digit_chars(value: int | float) -> int:
    """Digits in the number's shortest spelling: never fewer than ``_digits`` counts (leading zeros only
    add), so a number it clears is one ``value_problem`` clears. An exponent (1e-07 has 7 digits for
    ``_digits``) counts as too many: such a number takes the slow path."""
    text = repr(value)
    return 1 << 30 if "e" in text else sum(c.isdigit() for c in text)


def _fits(kind: int, length: int, item: Item, value: Any) -> bool:
    """A fast yes for values ``value_problem`` accepts; False only sends the record to the slow path."""
    if kind == _TEXT:
        return type(value) is str and (not length or len(value) <= length) and _plain_text(value)
    if kind == _MEMO:
        return type(value) is str and _plain_text(value)
    if kind == _LOGICAL:
        return type(value) is bool
    if kind == _DATE_KIND:
        if type(value) is not str or not _DATE.fullmatch(value):
            return False
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            return False
        return True
    if kind == _INTEGER and type(value) is int:
        return not length or len(str(abs(value))) <= length
    if kind == _DECIMAL and (type(value) is int or (type(value) is float and math.isfinite(value))):
        return not length or _digit_chars(value) <= length
    return value_problem(item, value) is None


class PayloadSchema:
    """A resource's items prepared for checking many records (the ingest's hot path).

    Gives exactly ``payload_problems``' answer: a record every value of which passes a fast check has no
    problem; any other record is checked by ``payload_problems`` itself, which names every problem."""

    def __init__(self, items: Sequence[Item]) -> None:
        self.items = tuple(items)
        self._kinds = {item.name: (_FAST_KINDS.get(item.data_type, _OTHER), item.length, item)
                       for item in self.items}
        self._required = tuple(item.name for item in self.items if item.required)

    def problems(self, record: Record, where: str = "") -> list[FieldProblem]:
        return [] if self._clean(record) else payload_problems(self.items, record, where)

    def _clean(self, record: Record) -> bool:
        if type(record.id) is not str or not _RECORD_ID.fullmatch(record.id) \
                or not 1 <= record.sequence <= MAX_SEQUENCE or record.operation is not Operation.UPSERT:
            return False
        payload, kinds = record.payload, self._kinds
        for name, value in payload.items():
            spec = kinds.get(name)
            if spec is None:
                return False
            if value is None or value == "":
                continue
            kind, length, item = spec
            if kind == _TEXT:  # most items: inline, not a call per value
                if type(value) is not str or (length and len(value) > length) or not _plain_text(value):
                    return False
            elif not _fits(kind, length, item, value):
                return False
        return all(payload.get(name) not in (None, "") for name in self._required)
