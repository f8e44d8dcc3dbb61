"""The monthly report's signed statement: the node signs the digests of the files it wrote, so a reader
(the upper tier) proves that the CSV and XML it holds are the node's report for that month, unchanged."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

_CONTEXT = b"exnode monthly report v1\n"


def report_signing_input(node_id: str, month: str, files: Mapping[str, bytes]) -> bytes:
    """Context, node, month, then one ``name sha256-hex`` line per file in name order."""
    lines = [f"{name} {hashlib.sha256(content).hexdigest()}" for name, content in sorted(files.items())]
    return _CONTEXT + f"{node_id}\n{month}\n".encode() + "\n".join(lines).encode("utf-8") + b"\n"
