"""Log output of the node: one JSON object per line by default, so that a log line of a request can be
found from its audit entry and back by the request id (the auth interceptor's, also returned to the
client as ``x-request-id``).

The request id comes from the request's context variable (node/ops/request_context.py), so a line logged
anywhere while a request is served, in a worker thread too (``asyncio.to_thread`` copies the context),
carries it without being passed along.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any, TextIO

from node.ops.request_context import request_id

FORMATS = ("json", "text")
# What every LogRecord has; anything else was given as ``extra=`` and is written as a field.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}


class RequestIdFilter(logging.Filter):
    """Stamps the current request id on every record (an explicit ``extra={"request_id": …}`` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", ""):
            record.request_id = request_id()
        return True


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", "request_id"?, …extra fields, "exception"?}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if getattr(record, "request_id", ""):
            document["request_id"] = record.request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key != "request_id" and not key.startswith("_"):
                document[key] = value
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """For people at a terminal: the usual line, with the request id when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = getattr(record, "request_id", "")
        return f"{line} [request_id={rid}]" if rid else line


def configure(level: str = "INFO", log_format: str = "json", stream: TextIO | None = None) -> None:
    """Replace the root logger's handlers with one writing ``log_format`` lines to ``stream`` (stderr)."""
    if log_format not in FORMATS:
        raise ValueError(f"log format {log_format!r}: expected one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # pika logs every failed connection attempt at ERROR with a traceback, several lines per retry; the
    # adapters report connection loss themselves, and health says whether the broker is reachable.
    logging.getLogger("pika").setLevel(logging.DEBUG if root.level <= logging.DEBUG else logging.CRITICAL)
