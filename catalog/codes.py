"""Identifier check characters from the national standards (see ../shared/DOMAIN.md).

Pure functions: they are used to validate catalog entries, grant masking rules and test data.
"""

from __future__ import annotations

import re
from functools import lru_cache

CREDIT_CODE_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
"""GB 32100-2015 alphabet: digits and upper-case letters without I, O, S, V, Z."""

_CREDIT_WEIGHTS = [pow(3, i, 31) for i in range(17)]
_CREDIT_REGISTRAR = set("123456789ANY")
_RESOURCE_CODE = re.compile(r"^(?P<front>[1-3][0-9]{5,19})/(?P<sequence>[0-9]{1,10})$")
_ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
_ID_CHECK = "10X98765432"


def credit_code_check_character(first17: str) -> str:
    """Check character of a 统一社会信用代码 (GB 32100) for its first 17 characters."""
    if len(first17) != 17:
        raise ValueError("a credit code body has 17 characters")
    total = 0
    for char, weight in zip(first17, _CREDIT_WEIGHTS, strict=True):
        value = CREDIT_CODE_ALPHABET.find(char)
        if value < 0:
            raise ValueError(f"character {char!r} is not in the GB 32100 alphabet")
        total += value * weight
    return CREDIT_CODE_ALPHABET[(31 - total % 31) % 31]


@lru_cache(maxsize=8192)  # an import names the same few hundred providers thousands of times
def credit_code_problem(code: str) -> str | None:
    """Why ``code`` is not a valid 统一社会信用代码, or None when it is.

    Codes that begin with A, N or Y (other registrars) are valid; some libraries wrongly refuse them.
    """
    if len(code) != 18:
        return f"must have 18 characters, has {len(code)}"
    bad = [c for c in code if c not in CREDIT_CODE_ALPHABET]
    if bad:
        return f"character {bad[0]!r} is not allowed (GB 32100 alphabet has no I, O, S, V, Z or lower case)"
    if code[0] not in _CREDIT_REGISTRAR:
        return f"registrar character {code[0]!r} must be 1-9, A, N or Y"
    expected = credit_code_check_character(code[:17])
    if code[17] != expected:
        return f"bad check character {code[17]!r}, expected {expected!r}"
    return None


def is_valid_credit_code(code: str) -> bool:
    return credit_code_problem(code) is None


def resident_id_check_character(first17: str) -> str:
    """Check character of a 居民身份证号码 (GB 11643, ISO 7064 MOD 11-2)."""
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError("an ID number body has 17 digits")
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def resident_id_problem(number: str) -> str | None:
    """Why ``number`` is not a valid 18-character resident ID, or None (15-digit old numbers pass)."""
    if len(number) == 15:
        return None if number.isdigit() else "a 15-character ID number has digits only"
    if len(number) != 18:
        return f"must have 18 characters, has {len(number)}"
    if not number[:17].isdigit():
        return "the first 17 characters must be digits"
    expected = resident_id_check_character(number[:17])
    if number[17].upper() != expected:
        return f"bad check character {number[17]!r}, expected {expected!r}"
    return None


def resource_code_problem(code: str) -> str | None:
    """Why ``code`` is not a 信息资源代码 (前段码 "/" 后段码), or None when it is.

    The front part is the classification code (类 1 digit, 项 2, 目 3, optional 细目), the back part the
    sequence number, e.g. ``112461465423/798456``.
    """
    if not _RESOURCE_CODE.match(code):
        return "must be a classification code of 6-20 digits starting with 1, 2 or 3, '/', and a sequence of 1-10 digits"
    return None


def resource_code_classification_digit(code: str) -> str:
    """The top-level classification digit (1 基础, 2 主题, 3 部门) of a well-formed resource code."""
    return code[0]
