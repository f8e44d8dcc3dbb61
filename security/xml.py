"""Hardened parsing of XML that comes from outside the node (catalog files, ministry envelopes).

Why this module exists: a stock XML parser is an attack surface. A document can declare entities that
expand exponentially ("billion laughs") or quadratically (one large entity referenced many times), point
entities or a DTD at ``file:///etc/passwd`` or an internal URL (XXE, server-side request forgery), nest
elements deeply enough to exhaust the stack, or simply be enormous. The exchange node has no use for DTDs,
entities, XInclude or processing instructions, so rather than trying to make them safe we refuse them:

- the size is checked *before* anything is parsed;
- any ``<!DOCTYPE`` or ``<!ENTITY`` declaration is refused by a pre-scan of the raw bytes (all encodings:
  the bytes are scanned with NUL bytes removed, which exposes ASCII markup in UTF-16/UTF-32 of either
  byte order, and decoded with the BOM's or declared encoding; encodings outside a short list are refused);
- the parser itself has entity resolution, DTD loading and validation, and network access off, keeps
  libxml2's limits on depth and text size (``huge_tree=False``), and drops comments and processing
  instructions; XInclude is never processed;
- after parsing, the tree's ``docinfo`` is checked again for a DOCTYPE, internal or external DTD, and the
  tree for unresolved entity references, so the parser settings remain a second, independent guard;
- when a schema is given, the document is validated and *every* schema problem is reported with its
  line, not just the first.

Nothing here ever reads a file or opens a connection on behalf of the document.
"""

from __future__ import annotations

import codecs
import re
import threading
from pathlib import Path

from lxml import etree

from security.errors import SecurityError

Problem = tuple[int | None, str]
"""One problem: the line it is on (None when the whole document is concerned) and what is wrong."""

MAX_LISTED_PROBLEMS = 200
"""A message lists at most this many problems (all of them stay in ``XmlRejected.problems``)."""

ALLOWED_ENCODINGS = frozenset({
    "utf-8", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be", "ascii", "latin-1",
    "iso8859-1", "gb18030", "gbk", "gb2312", "big5",
})
"""Python codec names of the encodings accepted (UTF, Latin-1 and the Chinese national encodings).

UTF-7, EBCDIC and other exotic encodings are refused: they would let markup hide from the pre-scan."""

_DECLARATIONS = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_TEXT_DECLARATIONS = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_DECLARED_ENCODING = re.compile(rb"""^<\?xml[^>]*?\sencoding\s*=\s*["']([A-Za-z][A-Za-z0-9._:-]*)["']""")
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_NO_BOM = (
    (b"<\x00\x00\x00", "utf-32-le"), (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00?\x00", "utf-16-le"), (b"\x00<\x00?", "utf-16-be"),
)
_VALIDATION_LOCK = threading.Lock()
"""lxml keeps a schema's error log on the schema object; one validation at a time keeps logs apart."""

_REFUSED_DTD = ("a DOCTYPE/DTD or ENTITY declaration; DTDs and entities are not accepted "
                "(they allow entity expansion bombs and fetching files or URLs)")


class XmlRejected(SecurityError):
    """The document was refused. ``reason`` is a short tag, ``problems`` every problem with its line."""

    reason = "rejected"

    def __init__(self, what: str, problems: list[Problem], *, reason: str | None = None) -> None:
        self.what = what
        self.problems = list(problems)
        if reason is not None:
            self.reason = reason
        super().__init__(self._message())

    def _message(self) -> str:
        lines = [f"line {line}: {text}" if line else text for line, text in self.problems]
        if len(lines) > MAX_LISTED_PROBLEMS:
            lines = lines[:MAX_LISTED_PROBLEMS] + [f"... and {len(lines) - MAX_LISTED_PROBLEMS} more problems"]
        if len(lines) == 1:
            return f"{self.what}: {lines[0]}"
        return f"{self.what}: {len(self.problems)} problems:\n" + "\n".join(f"  {line}" for line in lines)


class UnsafeXml(XmlRejected):
    """Refused for safety: too large, a DTD or entity declaration, an unaccepted encoding, too deep."""

    reason = "unsafe"


class InvalidXml(XmlRejected):
    """Not well-formed XML, or not valid against the schema."""

    reason = "invalid"


def safe_parser() -> etree.XMLParser:
    """A new parser with every feature that can expand, fetch or hide content turned off.

    One parser per document: lxml parsers are not meant to be shared between threads.
    """
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, attribute_defaults=False,
        huge_tree=False, remove_pis=True, remove_comments=True, strip_cdata=True, collect_ids=False,
        decompress=False,
    )


def load_schema(path: Path) -> etree.XMLSchema:
    """Load one of the project's own XSDs (trusted, but still parsed without network or DTDs)."""
    document = etree.parse(str(path), safe_parser())
    return etree.XMLSchema(document)


def document_encoding(data: bytes) -> str:
    """The Python codec the document is in: its BOM, the UTF-16/32 shape of ``<?``, its declaration, or
    UTF-8. Raises ValueError for an encoding that is unknown or not accepted."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name
    for start, name in _NO_BOM:
        if data.startswith(start):
            return name
    match = _DECLARED_ENCODING.match(data[:1024])
    if not match:
        return "utf-8"
    declared = match.group(1).decode("ascii")
    try:
        name = codecs.lookup(declared).name
    except LookupError:
        raise ValueError(f"unknown encoding {declared!r}") from None
    if name not in ALLOWED_ENCODINGS:
        raise ValueError(f"encoding {declared!r} is not accepted (use UTF-8)")
    if name.startswith(("utf-16", "utf-32")):
        return "utf-8"  # an 8-bit document labelled UTF-16/32: libxml2 reads it as 8-bit, so do we
    return name


def _prescan(data: bytes, what: str) -> None:
    """Refuse DOCTYPE/ENTITY declarations before the parser sees the bytes.

    Two scans, so that neither an encoding trick nor a wrong guess about the encoding hides a declaration:
    the text decoded as the document says, and the raw bytes without NULs (ASCII markup in any UTF-16 or
    UTF-32 byte order, and in every ASCII-compatible encoding, shows up there as plain ASCII).
    """
    try:
        encoding = document_encoding(data)
    except ValueError as error:
        raise UnsafeXml(what, [(None, f"refused: {error}")], reason="encoding") from None
    text = data.decode(encoding, errors="replace")
    line: int | None
    found_text = _TEXT_DECLARATIONS.search(text)
    if found_text is not None:
        line = text.count("\n", 0, found_text.start()) + 1
    else:
        stripped = data.replace(b"\x00", b"")
        found = _DECLARATIONS.search(stripped)
        if found is None:
            return
        line = stripped.count(b"\n", 0, found.start()) + 1
    raise UnsafeXml(what, [(line, f"refused: {_REFUSED_DTD}")], reason="dtd")


def _postcheck(tree: etree._ElementTree, what: str) -> None:
    """Second guard, independent of the pre-scan: what the parser saw must have no DTD and no entities."""
    docinfo = tree.docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise UnsafeXml(what, [(None, f"refused: {_REFUSED_DTD}")], reason="dtd")
    for entity in tree.getroot().iter(etree.Entity):
        raise UnsafeXml(what, [(entity.sourceline, f"refused: entity reference {entity.text}; entities are not "
                                                   "accepted")], reason="entity")


def _syntax_problems(error: etree.XMLSyntaxError, parser: etree.XMLParser) -> list[Problem]:
    # The parser's own log: ``error.error_log`` is a thread-global log that also holds earlier documents'.
    problems: list[Problem] = []
    for entry in parser.error_log:
        if entry.level >= etree.ErrorLevels.ERROR:
            problems.append((entry.line or None, entry.message.strip()))
    if not problems:
        problems.append((error.lineno or None, str(error.msg or error)))
    return problems


def parse_untrusted(
    data: bytes, *, schema: etree.XMLSchema | None, max_bytes: int, what: str = "XML document",
) -> etree._ElementTree:
    """Parse an XML document from outside the node, or raise UnsafeXml / InvalidXml naming every problem.

    ``what`` names the document in messages ("catalog file"). With a ``schema`` the document must also
    be valid against it; every validation error is reported with its line.
    """
    if not isinstance(data, bytes | bytearray):
        raise TypeError("parse_untrusted takes the raw bytes of the document")
    data = bytes(data)
    if len(data) > max_bytes:
        raise UnsafeXml(what, [(None, f"too large: {len(data)} bytes; at most {max_bytes} bytes are accepted")],
                        reason="too_large")
    if not data.strip():
        raise InvalidXml(what, [(None, "the document is empty")], reason="malformed")
    _prescan(data, what)
    parser = safe_parser()
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as error:
        problems = _syntax_problems(error, parser)
        deep = any("depth" in text.lower() for _, text in problems)
        kind = UnsafeXml if deep else InvalidXml
        if deep:
            problems = [(line, "too deeply nested: " + text.split(", use XML_PARSE_HUGE")[0]) for line, text in problems]
        raise kind(what, problems, reason="too_deep" if deep else "malformed") from None
    if root is None:
        raise InvalidXml(what, [(None, "the document has no root element")], reason="malformed")
    tree = root.getroottree()
    _postcheck(tree, what)
    if schema is not None:
        with _VALIDATION_LOCK:
            valid = schema.validate(tree)
            log = [(entry.line or None, entry.message.strip()) for entry in schema.error_log]
        if not valid:
            raise InvalidXml(what, log or [(None, "not valid against the schema")], reason="schema")
    return tree
