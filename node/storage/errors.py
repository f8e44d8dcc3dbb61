"""The base of storage's errors: what a repository refuses beside the database's own exceptions."""

from __future__ import annotations


class StorageError(Exception):
    """Base of every error of ``node.storage``."""
