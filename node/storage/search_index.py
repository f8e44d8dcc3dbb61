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

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from operator import add


def _fts_code(character: int) -> str:
    if character < 128 and not (chr(character).isascii() and chr(character).isalnum()) or chr(character) == "z":
        return f"z{character:02x}"
    return chr(character)


_FTS_ESCAPE = {c: _fts_code(c) for c in range(128) if _fts_code(c) != chr(c)}
del _FTS_ESCAPE[ord(" ")]  # the separator between words stays what it is
_NEEDS_ESCAPE = re.compile("[\x00-\x09\x0b-\x1f\x21-\x2f\x3a-\x40\x5b-\x60z\x7b-\x7f]")
"""A character ``_FTS_ESCAPE`` changes (or white space, which never reaches a term: a false alarm only)."""


def text_terms(search_text: str) -> list[str]:
    """The distinct terms of a stored search text (already lower-cased)."""
    runs = search_text.split()
    terms = set("".join(runs))
    for run in runs:
        bigrams = _RUN_TERMS.get(run)
        if bigrams is None:
            if len(_RUN_TERMS) >= _BIGRAMS_LIMIT:
                _RUN_TERMS.clear()
            bigrams = _RUN_TERMS[run] = tuple(map(add, run, run[1:]))
        terms.update(bigrams)
    return list(terms)


OUT_OF_LINE = "~" * 2_000
"""PostgreSQL: an element of every ``catalog_search.terms`` array that no query asks for (a query's terms
have one or two characters). Why: PostgreSQL moves a value out of a table's row only when the row is
longer than ~2 KB (TOAST_TUPLE_THRESHOLD; ``toast_tuple_target`` only sets how far it then goes), and a
row with its ~130 terms inline is ~1.5 KB: four to a page, every match's page read. With this element the
row is always long enough, the array (compressed: the element is one repeated character) leaves the row,
and the row keeps ~400 bytes; only the GIN index reads the terms."""


_RUN_TERMS: dict[str, tuple[str, ...]] = {}
"""A run's bigrams, remembered (runs recur: see ``_run_bigrams``)."""
_BIGRAMS_LIMIT = 65_536


def word_terms(word: str) -> list[str]:
    """The terms every text containing ``word`` has: its one character, or its distinct bigrams."""
    if len(word) == 1:
        return [word]
    return sorted({word[i:i + 2] for i in range(len(word) - 1)})


@dataclass(frozen=True)
class IndexedVersion:
    """What the SQLite index knows of one version row: its text, its filter attributes, and whom it is
    shown to. ``latest``: the resource's latest version (its own department, and callers who see every
    draft, see it). ``public``: the version other departments see (the published one, or the latest
    when none is; never a draft-only resource's)."""

    code: str
    search_text: str
    classification: str
    share_type: str
    open_type: str
    update_cycle: str
    provider_code: str
    status: str
    latest: bool
    public: bool
    name_length: int = 0
    """Characters of the lower-cased name at the start of ``search_text`` (then a line break)."""
    summary_length: int = 0
    """Characters of the lower-cased summary after it (then a line break, items and keywords)."""

    def fields(self) -> tuple[str, str, str]:
        """(name, summary, items and keywords) of the search text, the relevance order's three fields."""
        text, name_end = self.search_text, self.name_length
        summary_end = name_end + 1 + self.summary_length
        return text[:name_end], text[name_end + 1:summary_end], text[summary_end + 1:]


def indexed_version(row: Mapping, status: str, *, latest_version: int,
                    published_version: int | None, summary: str | None = None) -> IndexedVersion:
    """The index's view of a version row (``row``: its column values) under its resource's head.
    ``summary``: the version's summary when the caller has it (else read from the row's ``document``,
    or taken as empty when the row has none: the one-column index of migrations 0011 and 0023)."""
    public = status != "DRAFT" and row["version"] == (published_version or latest_version)
    name_length = summary_length = 0
    if "name" in row:
        if summary is None:
            summary = json.loads(row["document"]).get("summary", "") if "document" in row else ""
        # search_text is "\n".join(name, summary, items…, keywords…).lower(): lengths of the lower-cased
        # parts (lower() can lengthen a character) say where the fields end.
        name_length, summary_length = len(row["name"].lower()), len(summary.lower())
    return IndexedVersion(
        code=row["code"], search_text=row["search_text"], classification=row["classification"],
        share_type=row["share_type"], open_type=row["open_type"], update_cycle=row["update_cycle"],
        provider_code=row["provider_code"], status=status, latest=row["version"] == latest_version, public=public,
        name_length=name_length, summary_length=summary_length)


_RUN_BREAK = "zzb"
"""Between runs (and before the single characters): no phrase spans two runs. ``zz`` never occurs in an
encoded term (a ``z`` there is always followed by hex digits), so every ``zz…`` word is ours."""


@lru_cache(maxsize=4096)
def _attribute(kind: str, value: str) -> str:
    return "zz" + kind + "".join(c for c in value.lower() if c.isascii() and c.isalnum())


def _code_word(code: str) -> str:
    return "zzk" + code.replace("/", "x")


_BIGRAMS: dict[str, str] = {}


def _run_bigrams(run: str) -> str:
    """A run's bigrams, space-separated, remembered: most runs are item names and keywords that recur in
    thousands of resources (an import of 5,000 generated ones has 45,000 runs, 3,800 distinct)."""
    bigrams = _BIGRAMS.get(run)
    if bigrams is None:
        if len(_BIGRAMS) >= _BIGRAMS_LIMIT:
            _BIGRAMS.clear()
        bigrams = _BIGRAMS[run] = " ".join(map(add, run, run[1:]))
    return bigrams


def _text_terms(text: str) -> str:
    """One FTS5 column of a text: each run's bigrams in order, so a word of three or more characters is the
    phrase of its bigrams and matches exactly where it occurs; then the single characters. Escaping is
    skipped for a text with nothing to escape (most catalog texts: an import builds 10^5 of these)."""
    runs = text.split()
    bigrams = [_run_bigrams(run) for run in runs]
    singles = " ".join(set("".join(runs)))
    if _NEEDS_ESCAPE.search(text):
        bigrams = [part.translate(_FTS_ESCAPE) for part in bigrams]
        singles = singles.translate(_FTS_ESCAPE)
    return " ".join([*(part + " " + _RUN_BREAK for part in bigrams), singles])


def fts_document(row: IndexedVersion) -> str:
    """The one-column FTS5 row of migrations 0011–0034 (``terms``): the text's terms, then the attribute
    words. Kept for those migrations only; migration 0035 replaces it with ``fts_columns``."""
    return _text_terms(row.search_text) + " " + " ".join(_attribute_words(row))


def fts_columns(row: IndexedVersion) -> tuple[str, str, str, str]:
    """The FTS5 row of a version (SQLite, ``detail=full``; columns name, summary, rest, attributes, migration
    0035): the terms of its name (also marked), its summary (also marked), its items and keywords, and one
    word per filter attribute and visibility, so filters, counts and relevance ranks are answered by the
    index alone."""
    name, summary, rest = row.fields()
    name_terms, summary_terms = _text_terms(name), _text_terms(summary)
    return (name_terms + " " + _marked(_NAME_MARK, name_terms), summary_terms + " " + _marked(_SUMMARY_MARK, summary_terms),
            _text_terms(rest), " ".join(_attribute_words(row)))


_NAME_MARK = "zzn"
_SUMMARY_MARK = "zzd"
"""Field markers: the name's and the summary's terms are indexed twice, plain (for every search) and with
the marker in front, so "the word is in the name" is a phrase of marked terms with posting lists of their
own. Why not FTS5 column filters: those are applied to each position of every row holding the terms (a
phrase of five common bigrams in the name: 50–100 ms at 10^5), a marked term's list holds only names."""


def _marked(mark: str, terms: str) -> str:
    """Every term with ``mark`` in front, except the run breaks. By string replacement, not term by term
    (a quarter of a SQLite import's Python time was that generator): no term but a run break starts with
    ``zz`` (an encoded ``z`` is ``z7a``), so ``mark + _RUN_BREAK`` occurs only where a break was marked."""
    terms = " ".join(terms.split())  # no empty terms (a one-character run has no bigram)
    if not terms:
        return ""
    return (mark + terms.replace(" ", " " + mark)).replace(mark + _RUN_BREAK, _RUN_BREAK)


def _attribute_words(row: IndexedVersion) -> list[str]:
    words = [_attribute("c", row.classification), _attribute("h", row.share_type), _attribute("o", row.open_type),
             _attribute("u", row.update_cycle), _attribute("p", row.provider_code), _attribute("s", row.status),
             _code_word(row.code)]
    if row.latest:
        words.append("zzvlatest")
    if row.public:
        words.append("zzvpublic")
    return words


def array_terms(row: IndexedVersion) -> list[str]:
    """The PostgreSQL ``text[]`` of a version: its text terms and the same attribute words as FTS5's
    (a text term has one or two characters, an attribute word more, so they never collide)."""
    return sorted(text_terms(row.search_text) + _attribute_words(row))


def fts_word(word: str, mark: str = "") -> str:
    """The FTS5 phrase matching exactly the texts that contain ``word`` (with ``mark``: the marked field's)."""
    if len(word) == 1:
        return f'"{mark}{word.translate(_FTS_ESCAPE)}"'
    return '"' + " ".join(mark + word[i:i + 2].translate(_FTS_ESCAPE) for i in range(len(word) - 1)) + '"'


RELEVANCE_RANKS = 3
"""Relevance ranks: 0 every query word is in the name, 1 each is in the name or the summary, 2 the others."""


def fts_rank_match(expression: str, words: list[str], rank: int) -> str:
    """``expression`` (a list filter's, from ``fts_match``) narrowed to the matches of one relevance rank."""
    def within(level: int) -> str:
        if level == 0:
            return "(" + " AND ".join(fts_word(word, _NAME_MARK) for word in words) + ")"
        return "(" + " AND ".join(f"({fts_word(word, _NAME_MARK)} OR {fts_word(word, _SUMMARY_MARK)})"
                                  for word in words) + ")"
    if rank == 0:
        return f"({expression}) AND {within(0)}"
    if rank == 1:
        return f"(({expression}) AND {within(1)}) NOT {within(0)}"
    return f"({expression}) NOT {within(1)}"


def relevance_rank(fields: tuple[str, str, str], words: list[str]) -> int:
    """The rank ``fts_rank_match`` gives a text's (name, summary, rest) fields: the reference semantics."""
    name, summary, _rest = fields
    if all(word in name for word in words):
        return 0
    if all(word in name or word in summary for word in words):
        return 1
    return 2


def fts_match(words: list[str], attributes: dict[str, str], code_prefix: str, visible_to: str | None) -> str | None:
    """The FTS5 expression for a list filter (explicit ANDs: FTS5 joins a parenthesis to nothing
    implicitly); None when the code prefix can match no code (then nothing matches). ``attributes`` maps c/h/o/u/p/s (classification, share, open, cycle, provider, status) to
    the wanted value."""
    parts = [fts_word(word) for word in words]
    parts.extend(f'"{_attribute(kind, value)}"' for kind, value in sorted(attributes.items()) if value)
    if code_prefix:
        if not all(c.isdigit() or c == "/" for c in code_prefix):
            return None
        parts.append(f'"{_code_word(code_prefix)}"*')
    if visible_to is None:
        parts.append('"zzvlatest"')
    else:
        own = f'"{_attribute("p", visible_to)}"'
        parts.append(f'(("zzvlatest" AND {own}) OR ("zzvpublic" NOT {own}))')
    return " AND ".join(parts)


SEARCH_ID_SPACING = 1 << 32
"""Distance between the search ids of appended versions (and at most that between respaced ones)."""
SEARCH_ID_STEP = 1 << 16
"""Distance between versions inserted in a run between two neighbours: small, so a long sequence of
inserts at one place (a provider's new codes, always just below the next front code) uses the gap up
slowly instead of halving it each time."""


def allocate_search_ids(before: int | None, after: int | None, count: int) -> list[int] | None:
    """Search ids for ``count`` new versions that sort between the versions holding ``before`` and
    ``after`` (None: no neighbour on that side), in order; None when the gap is used up (respace it).

    Why ids in code order: FTS5 returns matches in rowid order, so when rowid order is the catalog's
    code order, a page is the first ``limit`` rows after a bound — what a bare index costs, however
    many rows match — instead of every match's code read and sorted."""
    base = before or 0
    if after is None:
        return [base + SEARCH_ID_SPACING * (i + 1) for i in range(count)]
    step = min(SEARCH_ID_STEP, (after - base) // (count + 1))
    if step < 1:
        return None
    return [base + step * (i + 1) for i in range(count)]
