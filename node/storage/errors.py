"""The base of storage's errors: what a repository refuses beside the database's own exceptions."""

from __future__ import annotations


class StorageError(Exception):
    """Base of every error of ``node.storage``."""


class MissingKeys(StorageError):
    """An encrypted row read by a repository built without the node's keys (a wiring bug, or a tool that
    must be given ``--data``)."""
