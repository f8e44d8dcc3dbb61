"""The catalog benchmark runs end to end and prints its figures (values are not judged here)."""

import pytest

from node.bench.catalog import main

KINDS = ("text", "text_rare", "text_relevance", "provider", "share_type", "classification_status", "paging")


@pytest.mark.bench
def test_catalog_bench_prints_every_figure(tmp_path, capsys):
    assert main(count=2000, urls=[f"sqlite:///{tmp_path / 'bench.db'}"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert all(line.count("=") == 1 for line in lines), lines
    figures = dict(line.split("=") for line in lines)
    assert figures.pop("backend") == "sqlite"
    expected = [
        "sqlite_catalog_import_seconds", "sqlite_catalog_import_resources_per_s",
        "sqlite_catalog_import_cpu_us_per_resource",
        *(f"sqlite_search_{kind}_{p}_ms" for kind in KINDS for p in ("p50", "p99")),
        "sqlite_search_p50_ms", "sqlite_search_p99_ms", "sqlite_raw_index_p99_ms",
        "sqlite_search_vs_raw_index_p99_ratio", "sqlite_get_p50_ms", "sqlite_get_p99_ms",
        "peak_rss_mb", "resources",
    ]
    assert sorted(figures) == sorted(expected)
    assert all(float(value) > 0 for value in figures.values()), figures
    assert figures["resources"] == "2000"
