"""The node's RabbitMQ names and topology (DESIGN.md §7): durable quorum queues, a dead-letter exchange
per node, predictable names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pika
import pika.exceptions

QUORUM = {"x-queue-type": "quorum"}


def names(node_id: str) -> dict[str, str]:
    """The predictable names of DESIGN.md §7."""
    return {"dlx": f"exnode.{node_id}.dlx", "dlq": f"exnode.{node_id}.dlq", "in": f"exnode.{node_id}.in",
            "catalog": f"exnode.{node_id}.catalog"}


def queue_arguments(node_id: str) -> dict[str, Any]:
    """Durable quorum queues whose rejected or expired messages go to the node's dead-letter exchange."""
    return {**QUORUM, "x-dead-letter-exchange": names(node_id)["dlx"]}


def declare_topology(channel: Any, node_id: str, queues: Sequence[str] = ()) -> None:
    """Declare the node's exchanges and queues on a blocking channel (tests, tools, consumers)."""
    n = names(node_id)
    channel.exchange_declare(n["dlx"], exchange_type="fanout", durable=True)
    channel.queue_declare(n["dlq"], durable=True, arguments=QUORUM)
    channel.queue_bind(n["dlq"], n["dlx"])
    for queue in queues:
        channel.queue_declare(queue, durable=True, arguments=queue_arguments(node_id))




def declare_queue(urls: str | Sequence[str], node_id: str, queue: str) -> None:
    """Declare the node's dead-letter topology and one consumer queue (a Subscribe), on a short-lived
    blocking connection: the subscriber can bind its consumer before the first message is relayed. Any
    broker of the list will do (a cluster node that is down is skipped); the last failure is raised."""
    failure: Exception | None = None
    for url in [urls] if isinstance(urls, str) else urls:
        params = pika.URLParameters(url)
        params.connection_attempts = 2
        try:
            with pika.BlockingConnection(params) as connection:
                declare_topology(connection.channel(), node_id, [queue])
            return
        except pika.exceptions.AMQPConnectionError as error:
            failure = error
    if failure is not None:
        raise failure


def publish_confirmed(urls: str | Sequence[str], node_id: str, messages: list[tuple[str, bytes, str, str]]) -> None:
    """Publish (queue, body, content type, message id) persistently with publisher confirms, on a
    short-lived connection: for a rare operator's act (a monthly report sent upward), not the hot path.
    A nack or an unreachable broker raises (pika's error): nothing is known to have been sent. Any broker
    of the list will do (a cluster node that is down is skipped)."""
    failure: Exception | None = None
    for url in [urls] if isinstance(urls, str) else urls:
        params = pika.URLParameters(url)
        params.connection_attempts = 2
        try:
            connection = pika.BlockingConnection(params)
        except pika.exceptions.AMQPConnectionError as error:
            failure = error
            continue
        with connection:
            channel = connection.channel()
            declare_topology(channel, node_id, sorted({queue for queue, _, _, _ in messages}))
            channel.confirm_delivery()
            for queue, body, content_type, message_id in messages:
                channel.basic_publish("", queue, body, pika.BasicProperties(
                    delivery_mode=pika.DeliveryMode.Persistent, content_type=content_type, message_id=message_id),
                    mandatory=True)
        return
    if failure is not None:
        raise failure
