"""The pull benchmark runs end to end (a served node, the reference client) on SQLite and PostgreSQL and
prints its figures (values are not judged here: this is not a timed test)."""

import pytest

from node.bench.pull import main


@pytest.mark.bench
def test_pull_bench_prints_every_figure(capsys):
    assert main(count=20_000) == 0

    lines = capsys.readouterr().out.splitlines()
    figures = {name: float(value) for name, value in (line.split("=") for line in lines)}
    for backend in ("sqlite", "postgresql"):
        assert figures[f"{backend}_pull_records_per_s"] > 0
        assert figures[f"{backend}_pull_batches"] == 3  # 20000 records in batches of 8192
        assert figures[f"{backend}_client_peak_rss_mb"] > 0
        assert figures[f"{backend}_node_peak_rss_mb"] > 0
    assert figures["records"] == 20_000


@pytest.mark.bench
def test_pull_bench_after_ingest_prints_every_figure_at_each_count(capsys):
    from node.bench.pull import main_ingest

    assert main_ingest(counts=[2_000, 20_000]) == 0

    lines = capsys.readouterr().out.splitlines()
    figures = {name: float(value) for name, value in (line.split("=") for line in lines)}
    for backend in ("sqlite", "postgresql"):
        for count in (2_000, 20_000):
            name = f"{backend}_at_{count}"
            for figure in ("ingest_records_per_s", "pull_first_after_ingest_records_per_s",
                           "pull_first_after_ingest_seconds", "raw_scan_records_per_s", "pull_vs_raw_ratio",
                           "client_peak_rss_mb", "node_peak_rss_mb"):
                assert figures[f"{name}_{figure}"] > 0, figure
        assert figures[f"{backend}_pull_first_growth_per_10x"] > 0
