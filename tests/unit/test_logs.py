"""The node's log lines: one JSON object per line, carrying the id of the request being served."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest

from node.ops import logs
from node.ops.request_context import RequestContext, reset, set_current


@pytest.fixture
def stream():
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    out = io.StringIO()
    logs.configure("INFO", "json", out)
    yield out
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_is_one_json_object_with_time_level_logger_message_and_extra_fields(stream):
    logging.getLogger("exnode.test").info("stored %d records", 3, extra={"batch_id": "b1", "当前": "中文"})
    [line] = lines(stream)
    assert line["level"] == "INFO" and line["logger"] == "exnode.test" and line["message"] == "stored 3 records"
    assert line["batch_id"] == "b1" and line["当前"] == "中文" and line["time"].endswith("+00:00")
    assert "request_id" not in line


def test_lines_logged_while_a_request_is_served_carry_its_id_in_worker_threads_too(stream):
    async def serve_one() -> None:
        token = set_current(RequestContext(request_id="rid-0123456789", method="CatalogService/GetResource", peer=""))
        try:
            logging.getLogger("exnode.test").warning("in the handler")
            await asyncio.to_thread(logging.getLogger("exnode.test").warning, "in a worker thread")
        finally:
            reset(token)
        logging.getLogger("exnode.test").warning("after the request")

    asyncio.run(serve_one())
    first, second, after = lines(stream)
    assert first["request_id"] == second["request_id"] == "rid-0123456789"
    assert "request_id" not in after


def test_an_explicit_request_id_wins_over_the_context(stream):
    token = set_current(RequestContext(request_id="rid-context-01", method="m", peer=""))
    try:
        logging.getLogger("x").info("refused", extra={"request_id": "rid-explicit-1"})
    finally:
        reset(token)
    assert lines(stream)[0]["request_id"] == "rid-explicit-1"


def test_exceptions_stay_inside_their_line(stream):
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        logging.getLogger("x").exception("failed")
    [line] = lines(stream)
    assert "ValueError: bad" in line["exception"] and len(stream.getvalue().splitlines()) == 1


def test_text_format_is_for_people_and_unknown_formats_are_refused():
    out = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        logs.configure("INFO", "text", out)
        token = set_current(RequestContext(request_id="rid-text-0001", method="m", peer=""))
        try:
            logging.getLogger("x").info("hello")
        finally:
            reset(token)
        assert out.getvalue().rstrip().endswith("INFO x hello [request_id=rid-text-0001]")
        with pytest.raises(ValueError, match="xml"):
            logs.configure("INFO", "xml", out)
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
