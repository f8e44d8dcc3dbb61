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
