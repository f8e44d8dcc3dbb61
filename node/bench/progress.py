"""How far a benchmark's long preparation has got (importing 10^5 resources, inserting 10^6 records),
for a person at a terminal. The benchmarks call ``step``; ``exnode bench`` installs a bar on a terminal
and nothing otherwise (their stderr lines stay, and nothing is drawn while figures are timed)."""

from __future__ import annotations

from collections.abc import Callable

Show = Callable[[str, int, int], None]
"""``show(what, done, total)``: one bar per ``what``."""

_shown: Show | None = None


def install(show: Show | None) -> None:
    global _shown
    _shown = show


def step(what: str, done: int, total: int) -> None:
    if _shown is not None:
        _shown(what, done, total)
