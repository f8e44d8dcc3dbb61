"""The base of storage's errors: what a repository refuses beside the database's own exceptions, and the
two database failures a caller can act on (retry elsewhere or later; free space)."""

from __future__ import annotations


class StorageError(Exception):
    """Base of every error of ``node.storage``."""


class StorageUnavailable(StorageError):
    """The database does not answer or the connection broke mid-transaction (a primary that died, a failover
    in progress): nothing of the transaction is promised; the client retries, and a multi-host URL reaches
    the new primary."""


class StorageFull(StorageError):
    """The database's disk is full: the write was refused whole; the message names the disk so that an
    operator knows what to free."""


class MissingKeys(StorageError):
    """An encrypted row read by a repository built without the node's keys (a wiring bug, or a tool that
    must be given ``--data``)."""
