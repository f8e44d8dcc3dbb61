"""The base of the adapters' errors: an envelope or a catalog entry that cannot be decoded or trusted, a
platforms file that cannot be read, a shovel that cannot be set, a message that can never be accepted."""

from __future__ import annotations


class AdapterError(Exception):
    """Base of every error of ``adapters``."""
