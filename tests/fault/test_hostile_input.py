"""Hostile input at volume: every RPC of every exnode.v1 service gets request messages that hypothesis
builds from the proto descriptors — random and extreme field values, huge strings, invalid UTF-8 in
bytes fields, unknown enum numbers, deep repetition, empty and large messages — from a caller holding every
role but the security officer's (the officer's alone for the audit service), so that requests reach past
authorisation into the use cases.

What must hold for every answer: never UNKNOWN or INTERNAL; no log line with a traceback; and a refusal
changed nothing (every table's row count is as before, except the audit trail, which only grows by the
refusal's own entries)."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator

import grpc
import pytest
from exnode.v1 import audit_pb2, catalog_pb2, exchange_pb2, keys_pb2, lists_pb2
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, inspect, select

from node.bootstrap import load_sample
from node.storage.tables import metadata
from tests.conftest import PROVIDER
from tests.integration.grpc_node import RunningNode, make_config

MODULES = (catalog_pb2, lists_pb2, exchange_pb2, audit_pb2, keys_pb2)
EXAMPLES = int(os.environ.get("EXNODE_FUZZ_EXAMPLES", "12"))
"""Examples per RPC (12: about 400 calls in all, ~100 s here); EXNODE_FUZZ_EXAMPLES=200 for a longer hunt."""
AUDIT_TABLES = {"audit_entries", "audit_head", "audit_checkpoints"}
ROLES = ("catalog_admin", "provider", "consumer", "reviewer", "platform", "operator")
FORBIDDEN = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}

SAMPLE_VALUES = ["", "311140001/000001", "311140001/999999", PROVIDER, "11150100011627354Q", "hhht",
                 "低保", "\u0000", "\ud7ff" * 3, "../../etc/passwd", "' OR 1=1 --", "<x/>", "{}", "9" * 40]


def methods() -> list[MethodDescriptor]:
    return [method for module in MODULES for service in module.DESCRIPTOR.services_by_name.values()
            for method in service.methods]


INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1), FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1), FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1), FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1), FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1), FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def scalar(field: FieldDescriptor) -> st.SearchStrategy:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return st.one_of(st.sampled_from(SAMPLE_VALUES), st.text(max_size=40),
                         st.builds(lambda c, n: c * n, st.characters(), st.sampled_from([1000, 70_000])))
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.one_of(st.binary(max_size=64), st.sampled_from([b"\xff\xfe\xfd", b"\xc3\x28", b"{}", b"\x00" * 33,
                                                                  b"<?xml version='1.0'?><!DOCTYPE x []><x/>",
                                                                  b"\x80" * 100_000]))
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32 if kind == FieldDescriptor.TYPE_FLOAT
                                   else 64), st.sampled_from([0.0, -0.0, math.inf, -math.inf]))
    if kind == FieldDescriptor.TYPE_ENUM:
        return st.one_of(st.sampled_from([v.number for v in field.enum_type.values]),
                         st.integers(-(2**31), 2**31 - 1))
    low, high = INT_RANGES[kind]
    return st.one_of(st.integers(low, high), st.sampled_from([0, 1, -1 if low < 0 else 2, low, high]))


def message(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy:
    cls = message_factory.GetMessageClass(descriptor)
    fields = list(descriptor.fields)

    def value(field: FieldDescriptor) -> st.SearchStrategy:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            return message(field.message_type, depth + 1) if depth < 3 else st.just(
                message_factory.GetMessageClass(field.message_type)())
        return scalar(field)

    def one_field(field: FieldDescriptor) -> st.SearchStrategy:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key_field, value_field = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            return st.dictionaries(scalar(key_field), value(value_field), max_size=4)
        if field.is_repeated:
            item = value(field)
            if depth > 0:
                # long repetition inside a repeated message multiplies (2,000 resources of 2,000 items of
                # 70,000-character names … built a 22 GB request in this process and the machine killed the run):
                # only the request's own fields repeat long
                return st.lists(item, max_size=4)
            return st.one_of(st.lists(item, max_size=4), st.builds(lambda x, n: [x] * n, item,
                                                                   st.sampled_from([200, 2000])))
        return value(field)

    @st.composite
    def build(draw: st.DrawFn) -> object:
        out = cls()
        chosen = draw(st.lists(st.sampled_from(fields), unique=True, max_size=len(fields))) if fields else []
        for field in chosen:
            drawn = draw(one_field(field))
            target = getattr(out, field.name)
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                for key, item in drawn.items():
                    if field.message_type.fields_by_name["value"].type == FieldDescriptor.TYPE_MESSAGE:
                        target[key].CopyFrom(item)
                    else:
                        target[key] = item
            elif field.is_repeated:
                if field.type == FieldDescriptor.TYPE_MESSAGE:
                    for item in drawn:
                        target.add().CopyFrom(item)
                else:
                    target.extend(drawn)
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                target.CopyFrom(drawn)
            else:
                setattr(out, field.name, drawn)
        return out

    return build()


class Tracebacks(logging.Handler):
    """Every log record that carries a traceback, from any thread of the node."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.stack_info:
            self.records.append(record)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    data = tmp_path_factory.mktemp("hostile") / "node"
    running = RunningNode(make_config(data, max_message_bytes=8 * 1024 * 1024))
    load_sample(running.node)
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(scope="module")
def tracebacks() -> Iterator[Tracebacks]:
    handler = Tracebacks()
    logging.getLogger().addHandler(handler)
    try:
        yield handler
    finally:
        logging.getLogger().removeHandler(handler)


def table_counts(node: RunningNode) -> dict[str, int]:
    with node.node.engine.connect() as connection:
        present = set(inspect(connection).get_table_names())  # catalog_search is PostgreSQL's alone
        return {table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
                for table in metadata.sorted_tables if table.name in present}


def call(channel: grpc.Channel, method: MethodDescriptor, requests: list) -> grpc.StatusCode:
    """One call with generated requests; the status it ended with (OK when it answered)."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    output = message_factory.GetMessageClass(method.output_type)
    serialize, parse = (lambda m: m.SerializeToString()), output.FromString
    try:
        if method.client_streaming and method.server_streaming:
            for _ in zip(range(5), channel.stream_stream(path, serialize, parse)(iter(requests), timeout=5),
                         strict=False):
                pass
        elif method.client_streaming:
            channel.stream_unary(path, serialize, parse)(iter(requests), timeout=10)
        elif method.server_streaming:
            for _ in zip(range(20), channel.unary_stream(path, serialize, parse)(requests[0], timeout=3),
                         strict=False):
                pass
        else:
            channel.unary_unary(path, serialize, parse)(requests[0], timeout=10)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def requests_for(method: MethodDescriptor) -> st.SearchStrategy:
    one = message(method.input_type)
    return st.lists(one, min_size=1, max_size=3) if method.client_streaming else st.lists(one, min_size=1,
                                                                                           max_size=1)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("method", methods(), ids=lambda m: f"{m.containing_service.name}.{m.name}")
def test_hostile_requests_never_get_unknown_or_internal_and_a_refusal_changes_nothing(
        node: RunningNode, tracebacks: Tracebacks, method: MethodDescriptor):
    roles = ("security_officer",) if method.containing_service.name == "AuditService" else ROLES
    channel = node.channel_as(PROVIDER, roles)
    seen: dict[str, int] = {}

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
    @given(requests=requests_for(method))
    def hostile(requests: list) -> None:
        before = table_counts(node)
        code = call(channel, method, requests)
        seen[code.name] = seen.get(code.name, 0) + 1
        assert code not in FORBIDDEN, f"{method.name} answered {code.name} to {[str(r)[:300] for r in requests]}"
        if code not in (grpc.StatusCode.OK, grpc.StatusCode.DEADLINE_EXCEEDED):
            after = table_counts(node)
            changed = {name: (before[name], after[name]) for name in before
                       if before[name] != after[name] and name not in AUDIT_TABLES}
            assert not changed, f"{method.name} refused with {code.name} but changed {changed}"
            assert after["audit_entries"] >= before["audit_entries"]
        assert not tracebacks.records, (f"{method.name}: a traceback was logged: "
                                        f"{tracebacks.records[0].getMessage()}")

    hostile()
    print(f"{method.containing_service.name}.{method.name}: {seen}")
