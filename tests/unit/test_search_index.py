"""The text index's fields: where a version's name, summary and items lie in its search text."""

from __future__ import annotations

import datetime as dt

from catalog import model
from node.storage.catalog_repository import CatalogRepository
from node.storage.search_index import indexed_version, relevance_rank
from tests.conftest import resource


def test_fields_are_found_when_lower_casing_lengthens_the_name_and_the_summary_has_line_breaks():
    meta = resource("311140001/000001", name="İ低保名册", summary="第一行\n第二行 AB", keywords=("词",))
    created = model.create(meta, dt.datetime(2026, 3, 1, tzinfo=dt.UTC))
    row = CatalogRepository._version_values(created.code, created.latest)
    assert len(meta.name.lower()) > len(meta.name)
    for summary in (meta.summary, None):  # given, or read from the stored document
        entry = indexed_version(row, "DRAFT", latest_version=1, published_version=None, summary=summary)
        name, summary_part, rest = entry.fields()
        assert (name, summary_part) == (meta.name.lower(), meta.summary.lower())
        assert rest == "\n".join([*(item.name for item in meta.items), *meta.keywords]).lower()
        assert relevance_rank(entry.fields(), ["低保", "ab"]) == 1


def test_ranks_name_before_summary_before_the_rest():
    assert relevance_rank(("低保名册", "摘要", "项"), ["低保", "名册"]) == 0
    assert relevance_rank(("低保名册", "摘要", "项"), ["低保", "摘要"]) == 1
    assert relevance_rank(("低保名册", "摘要", "项"), ["低保", "项"]) == 2


def test_marking_by_replacement_is_marking_term_by_term():
    """``_marked`` replaces the separators instead of marking each term: the FTS5 text must stay exactly
    what it was (a contentless FTS5 row is deleted by giving back its text; old rows were built term by term)."""
    import random

    from node.storage.search_index import _RUN_BREAK, _marked, _text_terms

    def term_by_term(mark: str, terms: str) -> str:
        return " ".join(term if term == _RUN_BREAK else mark + term for term in terms.split(" ") if term)

    chars = "abcz信息数据 \n\t\u3000资源/.-_\"'*()AZ09x:;"
    rng = random.Random(16)
    texts = ["", " ", "z", "zz", "信", "低保 名册 zzb"] + [
        "".join(rng.choice(chars) for _ in range(rng.randint(0, 30))) for _ in range(3_000)]
    for text in texts:
        terms = _text_terms(text)
        for mark in ("zzn", "zzd"):
            assert _marked(mark, terms) == term_by_term(mark, terms), text
