"""What health checks and metrics read of a running node: a protocol, so that operations code does not
depend on the bootstrap that builds the node (``node.bootstrap.Node`` is one)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from node.config import Config
from node.ops.workers import Worker


class Observed(Protocol):
    config: Config
    uow: Any
    """The unit-of-work factory (``ping()``, and ``uow()`` for reads)."""
    dispatcher: Any
    """The outbox dispatcher (thread or process) when this node runs one; its ``stats``."""
    inbound: Any
    catalog: Any
    """``counts()`` of the catalog by status."""
    lists: Any
    """The lists' application: its ``calendar`` (years it lacks) and ``clock``; None in a bare collector."""

    def workers(self) -> Mapping[str, Worker]: ...
