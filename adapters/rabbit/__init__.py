"""RabbitMQ (DESIGN.md §7): one reconnecting worker per connection (``worker``), the node's names and
topology, the wire form of an outbox row, and the workers that use them — the outbox dispatcher, the inbound
consumer, the catalog fanout publisher and the catalog uplink — plus the shovel that links tiers.

What others may import is listed here; the modules behind it are the package's own business.
"""

from adapters.rabbit.dispatcher import Dispatcher, DispatcherStats, OutboxPort, Outgoing
from adapters.rabbit.fanout import CatalogFanoutPublisher, FanoutBatch, FanoutMessage, FanoutSource
from adapters.rabbit.inbound import GROUPED, GroupHandler, InboundConsumer, Later, Poison
from adapters.rabbit.topology import (
    QUORUM,
    declare_queue,
    declare_topology,
    names,
    publish_confirmed,
    queue_arguments,
)
from adapters.rabbit.uplink import CatalogUplink
from adapters.rabbit.wire import RowProperties, pack, row_message, unpack
from adapters.rabbit.worker import BackoffPolicy, WorkerStats, broker_of, describe

__all__ = [
    "GROUPED", "QUORUM", "BackoffPolicy", "CatalogFanoutPublisher", "CatalogUplink", "Dispatcher", "DispatcherStats",
    "FanoutBatch", "FanoutMessage", "FanoutSource", "GroupHandler", "InboundConsumer", "Later", "OutboxPort",
    "Outgoing", "Poison", "RowProperties", "WorkerStats", "broker_of", "declare_queue", "declare_topology",
    "publish_confirmed",
    "describe", "names", "pack", "queue_arguments", "row_message", "unpack",
]
