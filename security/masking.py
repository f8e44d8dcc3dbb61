"""Masking of personal identifiers before records leave the node, as the grant says (DESIGN.md §8).

Rules (``catalog.lists`` validates them when a grant is made):
``keep:F,L`` keeps the first F and last L characters and replaces the rest with ``*`` (身份证号 keeps
6 and 4: the region and the last digits, the birth date hidden); ``hide`` replaces every character;
``drop`` removes the item; ``hash`` replaces the value by its SM3 digest (hex), so equal values still
join across records without revealing them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gmssl_pyx import sm3_hash

_KEEP = re.compile(r"keep:(\d{1,3}),(\d{1,3})")
MASK = "*"


def mask_value(rule: str, value: str) -> str | None:
    """The masked text, or None when the rule drops the item."""
    if rule == "drop":
        return None
    if rule == "hide":
        return MASK * len(value)
    if rule == "hash":
        return sm3_hash(value.encode("utf-8")).hex()
    match = _KEEP.fullmatch(rule)
    if match is None:
        raise ValueError(f"unknown masking rule {rule!r}")
    first, last = int(match.group(1)), int(match.group(2))
    if first + last >= len(value):
        # Too short to keep that much: hide the middle third rather than reveal the whole value.
        keep = len(value) // 3
        return value[:keep] + MASK * (len(value) - 2 * keep) + (value[len(value) - keep:] if keep else "")
    return value[:first] + MASK * (len(value) - first - last) + (value[len(value) - last:] if last else "")


def mask_record(payload: Mapping[str, Any], items: tuple[str, ...] | list[str], rules: Mapping[str, str]
                ) -> dict[str, Any]:
    """Only the granted items, each masked by its rule; values that are not text are masked as text."""
    out: dict[str, Any] = {}
    for item in items:
        if item not in payload:
            continue
        value = payload[item]
        rule = rules.get(item)
        if rule == "drop":
            continue
        if rule is None or value is None:
            out[item] = value
            continue
        masked = mask_value(rule, value if isinstance(value, str) else str(value))
        if masked is not None:
            out[item] = masked
    return out
