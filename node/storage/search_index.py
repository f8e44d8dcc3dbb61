"""The catalog's text index: character bigrams (and single characters) of the search text.

Why bigrams: Chinese has no word separators, so the catalog's promise is substring search (a query word
matches when it occurs anywhere in name, summary, item names or keywords). ``LIKE '%word%'`` keeps that
promise with a full scan (118–412 ms at 10^5 resources). Every substring of a text is made of the text's
bigrams, so "all bigrams of the word are indexed for this row" is a necessary condition the index answers
in milliseconds; a word of one or two characters is matched exactly by its single term, and for longer
words the ``LIKE`` check on the few candidates removes the rows whose bigrams occur apart. The results are
therefore exactly those of the substring filter (tests/integration/test_catalog_search.py proves it on
random catalogs on both databases).

A term is the character or the two characters themselves. PostgreSQL keeps a row's terms as a ``text[]``
under a GIN index. SQLite keeps them in a contentless FTS5 table (``tokenize = 'ascii'``, ``detail=none``):
that tokenizer keeps every non-ASCII character and ASCII letters and digits inside a word, so the few other
ASCII characters (punctuation, ``"``, ``*``…) are written as ``z`` and two hex digits (and ``z`` itself as
``z7a``) — a prefix-free code, so distinct terms stay distinct words, and no text a user typed ever reaches
FTS5's query syntax (every term is quoted, and the code leaves no quote in it).

Query words never contain white space (``str.split``), so white space splits the text into runs first
and no term spans two runs (nor the line breaks between name, summary and items).
"""

from __future__ import annotations


def _fts_code(character: int) -> str:
    if character < 128 and not (chr(character).isascii() and chr(character).isalnum()) or chr(character) == "z":
        return f"z{character:02x}"
    return chr(character)


_FTS_ESCAPE = {c: _fts_code(c) for c in range(128) if _fts_code(c) != chr(c)}
del _FTS_ESCAPE[ord(" ")]  # the separator between words stays what it is


def text_terms(search_text: str) -> list[str]:
    """The distinct terms of a stored search text (already lower-cased)."""
    terms: set[str] = set()
    for run in search_text.split():
        terms.update(run)
        terms.update(run[i:i + 2] for i in range(len(run) - 1))
    return list(terms)


def word_terms(word: str) -> list[str]:
    """The terms every text containing ``word`` has: its one character, or its distinct bigrams."""
    if len(word) == 1:
        return [word]
    return sorted({word[i:i + 2] for i in range(len(word) - 1)})


def needs_recheck(word: str) -> bool:
    """Whether a row having all the word's terms may still not contain the word (its bigrams apart)."""
    return len(word) > 2


def fts_document(terms: list[str]) -> str:
    """The FTS5 row text of the terms: one word per term, in the code above."""
    return " ".join(terms).translate(_FTS_ESCAPE)


def fts_query(terms: list[str]) -> str:
    """An FTS5 MATCH expression requiring every term (quoted words, joined by implicit AND)."""
    return " ".join(f'"{term.translate(_FTS_ESCAPE)}"' for term in terms)
