"""Suggesting published resources for a demand described in words (需求匹配).

Chinese has no spaces between words, so matching on words would need a segmenter and its dictionary;
character bigrams need neither and are what Chinese full-text search commonly indexes. A resource
scores by bigram overlap with its name (weighted most), its summary and keywords, and by how many of
the demanded items it has (exact item names, or bigram-similar ones such as 身份证号 ~ 公民身份号码).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from catalog.model import Resource

_NOISE = re.compile(r"[\s\W_]+", re.UNICODE)
NAME_WEIGHT, TEXT_WEIGHT, ITEM_WEIGHT = 3.0, 1.0, 2.0


def bigrams(text: str) -> set[str]:
    """Character bigrams of each run of letters (single characters for one-character runs)."""
    grams: set[str] = set()
    for run in _NOISE.split(text.lower()):
        if len(run) == 1:
            grams.add(run)
        grams.update(run[i:i + 2] for i in range(len(run) - 1))
    return grams


def _overlap(query: set[str], text: set[str]) -> float:
    """The share of the query's bigrams found in the text (a demand is short, a summary long)."""
    return len(query & text) / len(query) if query and text else 0.0


@dataclass(frozen=True)
class Suggestion:
    resource: Resource
    score: float
    matched_items: tuple[str, ...]


SYNONYMS: tuple[frozenset[str], ...] = (
    frozenset({"身份证号", "身份证号码", "公民身份号码", "居民身份证号码", "证件号码"}),
    frozenset({"电话", "联系电话", "手机号", "手机号码", "联系方式"}),
    frozenset({"姓名", "名字", "人员姓名"}),
    frozenset({"地址", "住址", "家庭住址", "居住地址"}),
)
"""Names departments use for the same item; bigrams alone miss 身份证号 ~ 公民身份号码."""


def same_item(a: str, b: str) -> bool:
    """The same item under two names (equal, or known synonyms)."""
    return a == b or any(a in group and b in group for group in SYNONYMS)


def _item_matches(wanted: Sequence[str], items: Sequence[str]) -> tuple[str, ...]:
    matched = []
    for item in wanted:
        same = next((name for name in items if same_item(item, name)), None)
        if same is not None:
            matched.append(same)
            continue
        grams = bigrams(item)
        best = max(items, key=lambda name: _overlap(grams, bigrams(name)), default="")
        if best and _overlap(grams, bigrams(best)) >= 0.5:
            matched.append(best)
    return tuple(matched)


def suggest(description: str, items: Sequence[str], resources: Iterable[Resource], limit: int = 10
            ) -> list[Suggestion]:
    """Published resources ranked by how well they match; ties keep catalog order."""
    query = bigrams(description)
    scored = []
    for resource in resources:
        meta = resource.latest.metadata
        item_names = [i.name for i in meta.items]
        name_score = _overlap(query, bigrams(meta.name))
        text_score = _overlap(query, bigrams(" ".join((meta.summary, *meta.keywords, *item_names))))
        matched = _item_matches(items, item_names)
        item_score = len(matched) / len(items) if items else 0.0
        score = NAME_WEIGHT * name_score + TEXT_WEIGHT * text_score + ITEM_WEIGHT * item_score
        if score > 0:
            scored.append(Suggestion(resource, round(score, 4), matched))
    scored.sort(key=lambda s: -s.score)
    return scored[:limit]
