"""bench scale, fanout and watchers run end to end at small sizes and print their figures (values are
not judged here: they are benchmarks, see the README for measured figures)."""

import pytest

from node.bench import fanout, scale, watchers


def figures(out: str) -> dict[str, str]:
    lines = [line for line in out.splitlines() if line]
    assert all(line.count("=") == 1 for line in lines), lines
    return dict(line.split("=") for line in lines)


@pytest.mark.bench
def test_scale_bench_prints_a_figure_per_size(capsys):
    assert scale.main(catalog_sizes=(500,), pull_sizes=(1000, 10_000), audit_sizes=(1000, 10_000)) == 0
    found = figures(capsys.readouterr().out)
    for name in ("catalog_search_p99_ms_500", "audit_query_p99_ms_1e3", "audit_query_p99_ms_1e4", "pull_s_1e3",
                 "pull_s_1e4", "pull_peak_rss_mb_1e4", "pull_s_growth_per_10x_1e3_1e4"):
        assert float(found[name]) > 0, name


@pytest.mark.bench
def test_fanout_bench_publishes_every_event(capsys):
    assert fanout.main(count=500) == 0
    found = figures(capsys.readouterr().out)
    assert found["fanout_messages"] == "500"
    assert float(found["fanout_msgs_per_s"]) > 0 and float(found["fanout_vs_raw_ratio"]) > 0


@pytest.mark.bench
def test_watchers_bench_delivers_every_commit_to_every_watcher(capsys):
    assert watchers.main(count=10) == 0
    found = figures(capsys.readouterr().out)
    assert found["deliveries"] == found["deliveries_expected"] == str(10 * watchers.COMMITS)
