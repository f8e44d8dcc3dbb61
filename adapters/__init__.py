"""Adapters (平台适配器): how records leave the node and arrive at it.

- ``adapters.codecs``: the exchange envelope and one codec per platform kind;
- ``adapters.platforms``: which platform gets which codec and queue, from a TOML file;
- ``adapters.rabbit``: RabbitMQ — the reconnecting worker, topology, the outbox dispatcher, the inbound
  consumer, the catalog fanout and uplink, the shovel between tiers.

Adapters import ``catalog`` and ``security``, never ``node`` (tests/unit/test_dependencies.py).
"""
