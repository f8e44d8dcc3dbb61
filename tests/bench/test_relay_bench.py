"""The relay benchmark runs end to end against the real broker and prints its figures (values are not
judged here: this is not a timed test)."""

import pytest

from node.bench.relay import ORDER, main

COUNTS = {"records": 2000, "batch": 500, "relay_messages": 2000, "relay_messages_published": 2000, "raw_runs": 3,
          "relay_runs": 3,
          "latency_rate_per_s": 1000, "latency_batch_size": 50, "latency_records": 5000}


@pytest.mark.bench
@pytest.mark.rabbitmq
def test_relay_bench_prints_every_figure(capsys):
    assert main(records=2000, batch=500, rate=1000, latency_seconds=5) == 0

    lines = capsys.readouterr().out.splitlines()
    assert all(line.count("=") == 1 for line in lines), lines
    figures = {name: float(value) for name, value in (line.split("=") for line in lines)}
    assert list(figures) == list(ORDER)
    for name, expected in COUNTS.items():
        assert figures[name] == expected, name
    assert all(value >= 0 for value in figures.values()), figures
    assert 900 <= figures["payload_bytes"] <= 1100  # ≈ 1 KB payloads
    assert 1000 < figures["relay_message_bytes_avg"] < 4000  # one record with its proof per message
    assert figures["latency_p50_ms"] <= figures["latency_p99_ms"] <= figures["latency_max_ms"]
    assert figures["relay_vs_raw_ratio_pairs_min"] <= figures["relay_vs_raw_ratio_pairs_max"]
    assert figures["peak_rss_mb"] >= figures["peak_rss_dispatcher_process_mb"] > 0
    ratio = figures["relay_records_per_s"] / figures["raw_records_per_s"]
    assert figures["relay_vs_raw_ratio"] == pytest.approx(ratio, abs=1e-3)  # printed with 3 decimals
