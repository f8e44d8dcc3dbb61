"""Masking of personal identifiers before records leave the node, as the grant says (DESIGN.md §8).

Rules (``catalog.lists`` validates them when a grant is made):
``keep:F,L`` keeps the first F and last L characters and replaces the rest with ``*`` (身份证号 keeps
6 and 4: the region and the last digits, the birth date hidden); ``hide`` replaces every character;
``drop`` removes the item; ``hash`` replaces the value by its SM3 digest (hex), so equal values still
join across records without revealing them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from gmssl_pyx import sm3_hash

_KEEP = re.compile(r"keep:(\d{1,3}),(\d{1,3})")
MASK = "*"


def rule_function(rule: str) -> Callable[[str], str] | None:
    """The rule as a function of the text (None for ``drop``); ValueError for an unknown rule."""
    if rule == "drop":
        return None
    if rule == "hide":
        return lambda value: MASK * len(value)
    if rule == "hash":
        return lambda value: sm3_hash(value.encode("utf-8")).hex()
    match = _KEEP.fullmatch(rule)
    if match is None:
        raise ValueError(f"unknown masking rule {rule!r}")
    first, last = int(match.group(1)), int(match.group(2))

    def keep(value: str) -> str:
        if first + last >= len(value):
            # Too short to keep that much: hide the middle third rather than reveal the whole value.
            third = len(value) // 3
            return value[:third] + MASK * (len(value) - 2 * third) + (value[len(value) - third:] if third else "")
        return value[:first] + MASK * (len(value) - first - last) + (value[len(value) - last:] if last else "")

    return keep


def mask_value(rule: str, value: str) -> str | None:
    """The masked text, or None when the rule drops the item."""
    function = rule_function(rule)
    return None if function is None else function(value)


Masker = Callable[[Mapping[str, Any]], dict[str, Any]]


@lru_cache(maxsize=256)
def _masker(items: tuple[str, ...], rules: tuple[tuple[str, str], ...]) -> Masker:
    by_item = dict(rules)
    plan = [(item, rule_function(by_item[item]) if item in by_item else None)
            for item in items if by_item.get(item) != "drop"]

    def mask(payload: Mapping[str, Any]) -> dict[str, Any]:
        return {item: value if function is None or value is None
                else function(value if isinstance(value, str) else str(value))
                for item, function in plan if item in payload for value in (payload[item],)}

    return mask


def masker(items: Sequence[str], rules: Mapping[str, str]) -> Masker:
    """``mask_record`` for one grant with its rules parsed once: a batch masks hundreds of records."""
    return _masker(tuple(items), tuple(sorted(rules.items())))


def mask_record(payload: Mapping[str, Any], items: Sequence[str], rules: Mapping[str, str]) -> dict[str, Any]:
    """Only the granted items, each masked by its rule; values that are not text are masked as text."""
    return masker(items, rules)(payload)
