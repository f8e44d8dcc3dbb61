"""The cache behind VerifyClaim's grants and keys serves an entry only at the counter it was filled at."""

from __future__ import annotations

from node.services.caches import GenerationCache


def test_an_entry_serves_only_requests_that_read_its_generation():
    cache: GenerationCache[str] = GenerationCache()
    loads: list[str] = []

    def load(value: str):
        def read() -> str:
            loads.append(value)
            return value
        return read

    assert cache.get("k", 1, load("a")) == "a"
    assert cache.get("k", 1, load("b")) == "a"  # same counter: the cached value, no read
    assert cache.get("k", 2, load("c")) == "c"  # a change anywhere bumped the counter: read again
    assert cache.get("k", 1, load("d")) == "d"  # an older counter is not the entry's either
    assert loads == ["a", "c", "d"]


def test_without_a_counter_nothing_is_cached_and_the_size_is_bounded():
    cache: GenerationCache[int] = GenerationCache(max_entries=2)
    assert cache.get("k", None, lambda: 1) == 1
    assert cache.get("k", None, lambda: 2) == 2
    for key in range(5):
        cache.get(key, 1, lambda: 0)
    assert len(cache._entries) <= 2
