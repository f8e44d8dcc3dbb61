"""核验 (claim verification): record keys and the matching rules that answer "is this claim true?".

Pure functions. A key is the values of a resource's key items, normalised so that the same person or
licence gives the same key however the caller typed it; a claim asserts one item's value, and the answer
is MATCH, MISMATCH or NO_RECORD — never the stored value. The rules per data type (DOMAIN.md):
codes exact; names normalised (full/half width, spaces, case); the final X of an ID number in either case;
dates in any of the accepted spellings; numbers by a comparison the caller asserts (``≤ 1200``).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from catalog.codes import credit_code_problem, resident_id_problem
from catalog.errors import FieldProblem, InvalidField
from catalog.model import Item, ItemDataType

MAX_KEYS = 100
"""Keys per QueryRecords call."""
MAX_CLAIMS = 50
MAX_VALUE = 200


class Answer(StrEnum):
    MATCH = "MATCH"
    MISMATCH = "MISMATCH"
    NO_RECORD = "NO_RECORD"
    """No current record for the key, or the record holds no value for the item."""


class LicenceState(StrEnum):
    """电子证照 state (GB/T 36901): 有效, 注销, 过期, 挂失."""

    VALID = "VALID"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"
    LOST = "LOST"


_NUMERIC = frozenset({ItemDataType.NUMERIC, ItemDataType.CURRENCY, ItemDataType.DOUBLE, ItemDataType.INTEGER,
                      ItemDataType.FLOAT})
_NAME_HINTS = ("姓名", "名称", "名字")
_ID_HINTS = ("身份号码", "身份证")
_CREDIT_HINTS = ("统一社会信用代码", "信用代码")
_SPACES = re.compile(r"\s+")


def is_name_item(item: Item) -> bool:
    return item.data_type in (ItemDataType.STRING, ItemDataType.MEMO) and any(h in item.name for h in _NAME_HINTS)


def is_id_number_item(item: Item) -> bool:
    return item.data_type is ItemDataType.STRING and any(h in item.name for h in _ID_HINTS)


def is_credit_code_item(item: Item) -> bool:
    return item.data_type is ItemDataType.STRING and any(h in item.name for h in _CREDIT_HINTS)


def normalise_name(text: str) -> str:
    """Full-width to half-width (NFKC), no spaces (an ideographic space included), case-folded, and the
    middle dots of transliterated names (·, ・, •) made one."""
    text = unicodedata.normalize("NFKC", text)
    text = _SPACES.sub("", text).replace("・", "·").replace("•", "·").replace("‧", "·")
    return text.casefold()


def identifier_problem(item: Item, value: str) -> str | None:
    """Why a key value is not a valid identifier of its kind (ID number by GB 11643, 统一社会信用代码 by GB
    32100), or None; other items take any text."""
    if is_id_number_item(item):
        problem = resident_id_problem(value)
        return f"is not a 公民身份号码 (GB 11643): {problem}" if problem else None
    if is_credit_code_item(item):
        problem = credit_code_problem(value)
        return f"is not a 统一社会信用代码 (GB 32100): {problem}" if problem else None
    return None


def key_part(item: Item, value: Any) -> str:
    """One key item's value as the index holds it: text, NFKC, without surrounding spaces; an ID number's
    final x upper-case; a date as YYYY-MM-DD; a number in its plain decimal spelling."""
    if item.data_type is ItemDataType.DATE:
        parsed = parse_date(str(value))
        return parsed.isoformat() if parsed else str(value).strip()
    if item.data_type in _NUMERIC and not isinstance(value, bool):
        try:
            return format(Decimal(str(value)).normalize(), "f")
        except InvalidOperation:
            return str(value).strip()
    text = unicodedata.normalize("NFKC", str(value)).strip()
    if is_id_number_item(item) or is_credit_code_item(item):
        return text.upper()
    return text


def key_text(items: Sequence[Item], values: Mapping[str, Any]) -> str:
    """The canonical text of a key (what the index HMACs): the normalised parts in item order, as JSON."""
    return json.dumps([key_part(item, values[item.name]) for item in items], ensure_ascii=False,
                      separators=(",", ":"))


def record_key(items: Sequence[Item], payload: Mapping[str, Any]) -> str | None:
    """The key text of a stored record's payload, or None when a key item has no value (a DELETE without
    payload)."""
    if not items or any(payload.get(item.name) in (None, "") for item in items):
        return None
    return key_text(items, payload)


def parse_key(items: Sequence[Item], given: Mapping[str, str], where: str) -> str:
    """The key text of a caller's key: every key item given, no other item, identifiers checked;
    InvalidField naming the field otherwise."""
    if not items:
        raise InvalidField.one(where, "the resource declares no key items: it cannot be queried by key")
    names = {item.name for item in items}
    problems = [FieldProblem(f"{where}.{name}", f"is not a key item (key items: {', '.join(i.name for i in items)})")
                for name in given if name not in names]
    for item in items:
        value = given.get(item.name, "")
        if not isinstance(value, str) or not value.strip():
            problems.append(FieldProblem(f"{where}.{item.name}", "is required (a key item)"))
            continue
        if len(value) > MAX_VALUE:
            problems.append(FieldProblem(f"{where}.{item.name}", f"is {len(value)} characters, at most {MAX_VALUE}"))
            continue
        problem = identifier_problem(item, key_part(item, value))
        if problem:
            problems.append(FieldProblem(f"{where}.{item.name}", f"{value!r} {problem}"))
    if problems:
        raise InvalidField(problems)
    return key_text(items, given)


# -- dates --------------------------------------------------------------------------------------------------

_DATE_FORMATS = (
    re.compile(r"(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})"),
    re.compile(r"(?P<y>\d{4})/(?P<m>\d{1,2})/(?P<d>\d{1,2})"),
    re.compile(r"(?P<y>\d{4})\.(?P<m>\d{1,2})\.(?P<d>\d{1,2})"),
    re.compile(r"(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})"),
    re.compile(r"(?P<y>\d{4})年(?P<m>\d{1,2})月(?P<d>\d{1,2})日?"),
)
DATE_SPELLINGS = "YYYY-MM-DD, YYYY/MM/DD, YYYY.MM.DD, YYYYMMDD or YYYY年MM月DD日"


def parse_date(text: str) -> dt.date | None:
    text = unicodedata.normalize("NFKC", text).strip()
    for pattern in _DATE_FORMATS:
        match = pattern.fullmatch(text)
        if match:
            try:
                return dt.date(int(match["y"]), int(match["m"]), int(match["d"]))
            except ValueError:
                return None
    return None


def parse_datetime(text: str) -> dt.datetime | None:
    text = unicodedata.normalize("NFKC", text).strip()
    try:
        value = dt.datetime.fromisoformat(text.replace(" ", "T", 1) if " " in text else text)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone(dt.timedelta(hours=8)))


# -- numbers ------------------------------------------------------------------------------------------------

_COMPARISON = re.compile(r"\s*(?P<op>≤|≥|<=|>=|<|>|=|==|≠|!=)?\s*(?P<number>[-+]?\d+(?:\.\d+)?)\s*")
_OPERATORS = {"≤": "<=", "≥": ">=", "==": "=", "≠": "!=", None: "="}


@dataclass(frozen=True)
class Comparison:
    operator: str
    """One of = != < <= > >=."""
    number: Decimal

    def holds(self, value: Decimal) -> bool:
        n = self.number
        return {"=": value == n, "!=": value != n, "<": value < n, "<=": value <= n, ">": value > n,
                ">=": value >= n}[self.operator]


def parse_comparison(text: str) -> Comparison | None:
    match = _COMPARISON.fullmatch(unicodedata.normalize("NFKC", text).replace("≤", "<=").replace("≥", ">="))
    if match is None:
        return None
    operator = match["op"]
    return Comparison(_OPERATORS.get(operator, operator), Decimal(match["number"]))


# -- claims -------------------------------------------------------------------------------------------------

_TRUE = {"true", "1", "是", "yes", "y"}
_FALSE = {"false", "0", "否", "no", "n"}


@dataclass(frozen=True)
class Claim:
    """One asserted item value: ``value`` as the caller typed it (for a number, a comparison)."""

    item: str
    value: str


def claim_problem(item: Item, value: str) -> str | None:
    """Why an asserted value cannot be compared with the item at all (a bad input, not a MISMATCH)."""
    if not isinstance(value, str) or not value.strip():
        return "is empty"
    if len(value) > MAX_VALUE:
        return f"is {len(value)} characters, at most {MAX_VALUE}"
    kind = item.data_type
    if kind in _NUMERIC and parse_comparison(value) is None:
        return (f"{value!r} is not a number or a comparison (=, ≠, <, ≤, >, ≥ and a number, e.g. '≤ 1200') "
                f"({kind.label})")
    if kind is ItemDataType.DATE and parse_date(value) is None:
        return f"{value!r} is not a date ({DATE_SPELLINGS})"
    if kind is ItemDataType.DATETIME and parse_datetime(value) is None:
        return f"{value!r} is not an ISO 8601 date-time"
    if kind is ItemDataType.LOGICAL and value.strip().lower() not in _TRUE | _FALSE:
        return f"{value!r} is not true or false"
    if is_id_number_item(item):
        problem = resident_id_problem(unicodedata.normalize("NFKC", value).strip())
        if problem:
            return f"{value!r} is not a 公民身份号码 (GB 11643): {problem}"
    if is_credit_code_item(item):
        problem = credit_code_problem(unicodedata.normalize("NFKC", value).strip().upper())
        if problem:
            return f"{value!r} is not a 统一社会信用代码 (GB 32100): {problem}"
    return None


def check_claims(items: Sequence[Item], claims: Sequence[Claim], allowed: Sequence[str], where: str = "claims"
                 ) -> None:
    """Every claim names an item of the resource, once, with a comparable value. (Whether the grant
    lets the caller assert it is the policy's question, asked after this.)"""
    by_name = {item.name: item for item in items}
    problems: list[FieldProblem] = []
    if not claims:
        problems.append(FieldProblem(where, "assert at least one item"))
    if len(claims) > MAX_CLAIMS:
        problems.append(FieldProblem(where, f"{len(claims)} claims, at most {MAX_CLAIMS}"))
    seen: set[str] = set()
    for index, claim in enumerate(claims):
        field = f"{where}[{index}]"
        item = by_name.get(claim.item)
        if item is None:
            problems.append(FieldProblem(f"{field}.item", f"{claim.item!r} is not an item of the resource"))
            continue
        if claim.item in seen:
            problems.append(FieldProblem(f"{field}.item", f"{claim.item!r} is asserted twice"))
        seen.add(claim.item)
        problem = claim_problem(item, claim.value)
        if problem:
            problems.append(FieldProblem(f"{field}.value", problem))
    if problems:
        raise InvalidField(problems)


def answer(item: Item, asserted: str, stored: Any) -> Answer:
    """MATCH or MISMATCH of an asserted value against the stored one (NO_RECORD when nothing is stored).
    The asserted value passed ``claim_problem``."""
    if stored is None or stored == "":
        return Answer.NO_RECORD
    kind = item.data_type
    if kind in _NUMERIC:
        comparison = parse_comparison(asserted)
        try:
            value = Decimal(str(stored))
        except InvalidOperation:
            return Answer.MISMATCH
        return Answer.MATCH if comparison is not None and comparison.holds(value) else Answer.MISMATCH
    if kind is ItemDataType.DATE:
        return _same(parse_date(asserted), parse_date(str(stored)))
    if kind is ItemDataType.DATETIME:
        return _same(parse_datetime(asserted), parse_datetime(str(stored)))
    if kind is ItemDataType.LOGICAL:
        truth = asserted.strip().lower() in _TRUE
        return _same(truth, bool(stored) if isinstance(stored, bool) else str(stored).lower() in _TRUE)
    text = str(stored)
    if is_name_item(item):
        return _same(normalise_name(asserted), normalise_name(text))
    if is_id_number_item(item) or is_credit_code_item(item):
        return _same(unicodedata.normalize("NFKC", asserted).strip().upper(), text.strip().upper())
    return _same(asserted.strip(), text.strip())  # codes: exact (surrounding spaces are not part of a code)


def _same(a: object, b: object) -> Answer:
    return Answer.MATCH if a is not None and a == b else Answer.MISMATCH


_STATE_ITEMS = ("证照状态", "状态")
_VALID_UNTIL = ("有效期至", "有效期截止日期", "有效截止日期")
_STATE_WORDS = {
    LicenceState.VALID: ("有效", "正常", "valid"),
    LicenceState.REVOKED: ("注销", "撤销", "吊销", "revoked"),
    LicenceState.EXPIRED: ("过期", "失效", "expired"),
    LicenceState.LOST: ("挂失", "lost"),
}


def licence_state(items: Sequence[Item], payload: Mapping[str, Any], today: dt.date) -> LicenceState | None:
    """The 电子证照 state of a record when the resource carries one: its state item (证照状态), and a
    validity end date (有效期至) in the past makes a valid licence EXPIRED. None when neither exists."""
    names = {item.name for item in items}
    state: LicenceState | None = None
    for name in _STATE_ITEMS:
        if name in names and payload.get(name) not in (None, ""):
            text = str(payload[name]).strip().lower()
            state = next((s for s, words in _STATE_WORDS.items() if any(w in text for w in words)), None)
            break
    for name in _VALID_UNTIL:
        if name in names and payload.get(name):
            until = parse_date(str(payload[name]))
            if until is not None:
                if until < today and state in (None, LicenceState.VALID):
                    state = LicenceState.EXPIRED
                elif state is None:
                    state = LicenceState.VALID
            break
    return state
