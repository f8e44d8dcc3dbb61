"""The console benchmark runs end to end against a served node and prints its figures (not judged here)."""

import pytest

from node.bench.console import main


@pytest.mark.bench
def test_console_bench_prints_every_figure(capsys):
    assert main(audit_entries=5000, resources=500, requests=5) == 0
    lines = capsys.readouterr().out.splitlines()
    assert all(line.count("=") == 1 for line in lines), lines
    figures = dict(line.split("=") for line in lines)
    for name in ("console_audit_p50_ms", "console_audit_p99_ms", "console_catalog_p50_ms", "console_catalog_p99_ms",
                 "raw_static_p99_ms", "console_audit_vs_raw_p99_ratio", "console_catalog_vs_raw_p99_ratio",
                 "rpc_audit_p99_ms", "rpc_catalog_p99_ms", "console_audit_vs_rpc_p99_ratio",
                 "console_catalog_vs_rpc_p99_ratio"):
        assert float(figures[name]) > 0, name
    assert figures["console_audit_entries"] == "5000" and figures["console_sessions"] == "8"
