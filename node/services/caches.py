"""In-process caches of rows every VerifyClaim and QueryRecords needs (grants, consumer encryption keys),
checked against ``cache_generations`` on every request.

Why not a time-to-live: a revoked grant must be refused by the very next request, on every replica. The
request reads the counters in its own read transaction (one small statement beside the published
version); an entry serves only a request that read the counter it was filled at, and every write of a
grant or consumer key adds one to its counter in the write's own transaction. So what a request sees is
never older than the database at the start of its transaction, here and on any other replica sharing the
database; a change committed while a request runs is seen by the next one, exactly as without the cache.

An entry is filled by reading the counter first and the rows after it, in one transaction: rows newer
than their counter only make the entry more conservative, never stale.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

Value = TypeVar("Value")
MAX_ENTRIES = 4096


class GenerationCache(Generic[Value]):
    """Values by key, each valid at the counter it was read at (thread-safe; bounded by clearing)."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: dict[Hashable, tuple[int, Value]] = {}
        self._lock = threading.Lock()
        self._max = max_entries
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, generation: int | None, load: Callable[[], Value]) -> Value:
        """The value at ``generation`` (read by the caller in the transaction ``load`` reads in); None:
        the counter could not be read, so nothing is cached."""
        if generation is None:
            return load()
        entry = self._entries.get(key)
        if entry is not None and entry[0] == generation:
            self.hits += 1
            return entry[1]
        value = load()
        self.misses += 1
        with self._lock:
            if len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[key] = (generation, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
