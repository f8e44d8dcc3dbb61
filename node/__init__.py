"""The running node. Only entry points (the ``exnode`` CLI) and tests import it.

Entry modules: ``bootstrap`` (the one object graph), ``config``. Packages, one job each:
``grpc`` (server, interceptors, servicers), ``cli`` (subcommands), ``services`` (use cases: catalog,
lists, audit, feed, pull, exchange keys/subscriptions), ``pipeline`` (the record's path), ``storage``
(tables, repositories, the unit of work, migrations), ``files`` (catalog/lists/manifest file formats),
``ops`` (health, metrics, logs, backup, start-up checks, workers), ``clients`` (the pull reference client),
``bench`` (benchmarks). pyproject.toml's import-linter contracts keep them free of circles.
"""
