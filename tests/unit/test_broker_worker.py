"""The reconnecting worker's rules, without a broker: backoff with jitter and a cap, and log lines that
always say what went wrong (pika's connection errors often carry no text)."""

from __future__ import annotations

import random

import pika.exceptions
import pytest
from pika.adapters.utils.connection_workflow import (
    AMQPConnectionWorkflowFailed,
    AMQPConnectorSocketConnectError,
)

from adapters.rabbit import BackoffPolicy, broker_of, describe
from adapters.rabbit.worker import ConnectionWorker


def test_the_backoff_doubles_to_its_cap_with_full_jitter_and_starts_again_after_a_reset():
    backoff = BackoffPolicy(initial_s=0.5, max_s=10.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(10)]
    ceilings = [min(10.0, 0.5 * 2 ** n) for n in range(10)]
    assert all(ceiling / 2 <= delay <= ceiling for delay, ceiling in zip(delays, ceilings, strict=True)), delays
    assert len(set(delays)) == len(delays)  # jittered: workers of many nodes do not retry in step
    backoff.reset()
    assert 0.25 <= backoff.next_delay() <= 0.5


@pytest.mark.parametrize(("error", "expected"), [
    (pika.exceptions.AMQPConnectionError(), "AMQPConnectionError: the broker cannot be reached"),
    (pika.exceptions.AMQPConnectionError(AMQPConnectorSocketConnectError(ConnectionRefusedError(111, "Connection refused"))),
     "AMQPConnectionError: ConnectionRefusedError: Connection refused"),
    (pika.exceptions.StreamLostError(), "StreamLostError: the connection was lost"),
    (pika.exceptions.StreamLostError("Transport indicated EOF"), "StreamLostError: Transport indicated EOF"),
    (pika.exceptions.ConnectionClosedByBroker(320, "CONNECTION_FORCED - broker forced connection closure"),
     "ConnectionClosedByBroker: 320 CONNECTION_FORCED - broker forced connection closure"),
    (AMQPConnectionWorkflowFailed([AMQPConnectorSocketConnectError(TimeoutError("timed out"))]),
     "AMQPConnectionWorkflowFailed: TimeoutError: timed out"),
    (pika.exceptions.ChannelClosedByBroker(406, "PRECONDITION_FAILED - inequivalent arg 'x-queue-type'"),
     "ChannelClosedByBroker: 406 PRECONDITION_FAILED - inequivalent arg 'x-queue-type'"),
    (RuntimeError(), "RuntimeError: no reason given"),
])
def test_an_error_is_described_by_its_class_and_a_reason_never_empty(error, expected):
    assert describe(error) == expected


def test_a_broker_is_named_without_its_password():
    assert broker_of("amqp://guest:secret@127.0.0.1:5672/%2F") == "guest@127.0.0.1:5672/%2F"
    assert broker_of("amqps://node:pw@mq.example.gov.cn/exnode") == "node@mq.example.gov.cn:5671/exnode"
    assert "secret" not in broker_of("amqp://u:secret@h/")


def test_a_heartbeat_the_url_names_is_kept_otherwise_the_workers_own():
    """A deployment shortens how long a silent partition goes unnoticed by ``?heartbeat=`` in its URL."""
    worker = ConnectionWorker("w", "amqp://guest:guest@127.0.0.1:5672/%2F")
    assert worker.parameters("amqp://guest:guest@127.0.0.1:5672/%2F").heartbeat == ConnectionWorker.heartbeat_s
    assert worker.parameters("amqp://guest:guest@127.0.0.1:5672/%2F?heartbeat=5").heartbeat == 5
