"""The household-check message format as published (``adapters/codecs/schemas/household-check.schema.json``):
tests hold every message the node, the reference responder and an exnode department send against it, so
the document a bank's integrator reads is the one the code speaks."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "adapters" / "codecs" / "schemas" / "household-check.schema.json"
SCHEMA: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
Draft202012Validator.check_schema(SCHEMA)
VALIDATOR = Draft202012Validator(SCHEMA)
BRANCHES = {kind: Draft202012Validator({"$defs": SCHEMA["$defs"], "$ref": f"#/$defs/{ref}"})
            for kind, ref in (("request", "signedRequest"), ("answer", "signedAnswer"), ("sealed", "sealedMessage"))}
"""One validator per kind of message: the whole schema's ``oneOf`` says only that neither kind fits."""


def problems(message: dict[str, Any]) -> list[str]:
    """What the schema finds wrong with one message (``[]`` when it conforms). ``format: date-time`` is
    checked here too: jsonschema leaves formats unchecked without extra packages."""
    errors = list(VALIDATOR.iter_errors(message))
    kind = next((k for k in BRANCHES if isinstance(message, dict) and k in message), None)
    if errors and kind is not None:
        errors = list(BRANCHES[kind].iter_errors(message)) or errors
    found = [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors]
    document = message.get("request") or message.get("answer") or {}
    for name in ("deadline", "at"):
        if name in document:
            try:
                parsed = dt.datetime.fromisoformat(str(document[name]))
            except ValueError:
                found.append(f"{name}: {document[name]!r} is not a date-time")
            else:
                if parsed.tzinfo is None:
                    found.append(f"{name}: {document[name]!r} has no time zone (RFC 3339 needs one)")
    return found


def assert_conforms(body: bytes, readers: dict[str, Any] | None = None, *, sealed: bool = True) -> dict[str, Any]:
    """The message (opened when sealed to one of ``readers``: id → its ``ConsumerPrivateKey``), checked
    against the schema both sealed and opened; ``sealed``: it must cross the broker sealed."""
    message = json.loads(body)
    found = problems(message)
    assert not found, f"not in the published format: {found}: {message}"
    assert not sealed or "sealed" in message, f"crossed the broker in clear: {message}"
    if "sealed" in message and readers:
        from security.broker_sealing import open_message

        to = message["sealed"]["to"]
        assert to in readers, f"sealed to {to}, not to one of {sorted(readers)}"
        return assert_conforms(open_message(body, to, readers[to]), sealed=False)
    return message
