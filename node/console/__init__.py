"""The web console (网页控制台): pages for people — security officers, partner departments, catalog
administrators and reviewers, operators — rendered on the node from the same use cases as the RPCs,
authorised by the same policy and audited like them. ``exnode serve`` runs it on its own listener."""

from node.console.app import Console
from node.console.server import ConsoleServer, ConsoleStartError, build_console

__all__ = ["Console", "ConsoleServer", "ConsoleStartError", "build_console"]
