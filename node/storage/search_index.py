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


def indexed_version(row: Mapping, status: str, *, latest_version: int,
                    published_version: int | None) -> IndexedVersion:
    """The index's view of a version row (``row``: its column values) under its resource's head."""
    public = status != "DRAFT" and row["version"] == (published_version or latest_version)
    return IndexedVersion(
        code=row["code"], search_text=row["search_text"], classification=row["classification"],
        share_type=row["share_type"], open_type=row["open_type"], update_cycle=row["update_cycle"],
        provider_code=row["provider_code"], status=status, latest=row["version"] == latest_version, public=public)


_RUN_BREAK = "zzb"
"""Between runs (and before the single characters): no phrase spans two runs. ``zz`` never occurs in an
encoded term (a ``z`` there is always followed by hex digits), so every ``zz…`` word is ours."""


@lru_cache(maxsize=4096)
def _attribute(kind: str, value: str) -> str:
    return "zz" + kind + "".join(c for c in value.lower() if c.isascii() and c.isalnum())


def _code_word(code: str) -> str:
    return "zzk" + code.replace("/", "x")


def fts_document(row: IndexedVersion) -> str:
    """The FTS5 row of a version (SQLite, ``detail=full``): each run's bigrams in order, so a word of three
    or more characters is the phrase of its bigrams and matches exactly where it occurs; then the single
    characters; then one word per filter attribute and visibility, so filters and counts are answered
    by the index alone."""
    words: list[str] = []
    singles: set[str] = set()
    for run in row.search_text.split():
        words.append(" ".join(map(add, run, run[1:])).translate(_FTS_ESCAPE))
        words.append(_RUN_BREAK)
        singles.update(run)
    words.append(" ".join(singles).translate(_FTS_ESCAPE))
    text_part = " ".join(words)
    return text_part + " " + " ".join(_attribute_words(row))


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


def fts_word(word: str) -> str:
    """The FTS5 phrase matching exactly the texts that contain ``word``."""
    if len(word) == 1:
        return f'"{word.translate(_FTS_ESCAPE)}"'
    return '"' + " ".join(word[i:i + 2].translate(_FTS_ESCAPE) for i in range(len(word) - 1)) + '"'


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
"""Distance between the search ids of neighbouring versions after a renumbering, and of appended ones."""
SEARCH_ID_STEP = 1 << 16
"""Distance between versions inserted in a run between two neighbours: small, so a long sequence of
inserts at one place (a provider's new codes, always just below the next front code) uses the gap up
slowly instead of halving it each time."""


def allocate_search_ids(before: int | None, after: int | None, count: int) -> list[int] | None:
    """Search ids for ``count`` new versions that sort between the versions holding ``before`` and
    ``after`` (None: no neighbour on that side), in order; None when the gap is used up (renumber).

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
