"""The record's path, in one package (DESIGN.md §4.3): a provider's signed batch is checked and stored
with its outbox rows in one transaction (``ingest``, applying the pure ``rules``), the outbox rows are
built per subscriber (``outbox``: masked, sealed, encoded) and drained by the dispatcher — a thread, or
its own process (``dispatcher_process``) — through ``SqlOutbox``, whose confirms record the deliveries.
The inbound queue (``inbound``) and the lower tiers (``tiers``) enter the same store.

Read in this order: batches → rules → ingest → outbox → ``adapters.rabbit.dispatcher``.
"""

from node.pipeline.batches import (
    CheckedBatch,
    IncomingBatch,
    IngestResult,
    Limits,
    PreparedOutbox,
    batch_leaves,
    new_batch_id,
    provider_batch,
)
from node.pipeline.inbound import inbound_handler
from node.pipeline.ingest import Ingest
from node.pipeline.outbox import SqlOutbox, build_dispatcher
from node.services.errors import BadSignature, BrokerUnavailable, ExchangeError, RequestTooLarge

__all__ = [
    "BadSignature", "BrokerUnavailable", "CheckedBatch", "IncomingBatch", "Ingest", "IngestResult", "Limits",
    "ExchangeError", "PreparedOutbox", "RequestTooLarge", "SqlOutbox", "batch_leaves", "build_dispatcher",
    "inbound_handler", "new_batch_id", "provider_batch",
]
