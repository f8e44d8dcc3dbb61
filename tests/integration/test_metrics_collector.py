"""The node-state metrics read at scrape time: a database that does not answer is reported, not a failed
scrape (Prometheus would then lose every other metric of the node too)."""

from __future__ import annotations

from types import SimpleNamespace

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from node.ops.metrics import NodeCollector
from node.storage.database import make_engine
from node.storage.unit_of_work import SqlUnitOfWorkFactory
from tests.fault.support import free_port


def test_a_database_that_refuses_is_reported_as_down_and_the_scrape_still_answers():
    engine = make_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/nothing")  # nothing listens there
    node = SimpleNamespace(uow=SqlUnitOfWorkFactory(engine), dispatcher=None, inbound=None, catalog=None,
                           lists=None, workers=dict)
    registry = CollectorRegistry()
    registry.register(NodeCollector(node))  # type: ignore[arg-type]
    try:
        samples = {s.name: s.value for family in text_string_to_metric_families(generate_latest(registry).decode())
                   for s in family.samples}
    finally:
        engine.dispose()
    assert samples["exnode_database_up"] == 0
    assert samples["exnode_broker_connected"] == 0 and "exnode_outbox_pending_messages" not in samples
