"""The benchmark (tests/benchmarks) at size S for a few polls, so that it cannot rot.

Asserts that it completes and that its figures are sane and consistent, never a timing.
"""

from __future__ import annotations

import json

import pytest

from tests.benchmarks import cli

pytestmark = pytest.mark.slow  # runs the benchmark: full suite only (see docs/testing.md)


def test_benchmark_runs_at_size_s_and_its_figures_are_sane(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["--sizes", "S", "--polls", "2", "--growth-polls", "12", "--growth-size", "S"]
    argv += ["--scrape-seconds", "0.2", "--scrape-min", "2", "--json", str(out)]
    assert cli.main(argv) == 0
    table = capsys.readouterr().out
    for label in ("initial fill", "steady poll", "exporter /metrics", "peak RSS", "Machine:"):
        assert label in table

    data = json.loads(out.read_text())
    assert data["machine"]["nproc"] >= 1 and data["machine"]["python"]
    (s,) = data["results"]
    assert s["size"] == "S" and s["agents"] == 50

    rc = s["rocketchat"]
    # One request per day the longest window (7d) touches, each a single page at 50 agents.
    assert rc["fill_history"] == 8 and rc["fill_status"] == 1
    # Steady state: today's pages and the live status, nothing else.
    assert (rc["steady_history"], rc["steady_status"]) == (1, 1)
    assert (rc["expected_history"], rc["expected_status"]) == (1, 1)
    # The naive design fetches every day of every window on every poll.
    assert rc["naive_history"] == rc["naive_days_per_poll"] > rc["steady_history"]
    assert rc["responses_429"] == 0 and rc["responses_other_errors"] == 0
    assert rc["poll_interval"] == rc["poll_interval_metric"] == 60
    assert rc["stretch_warnings"] == 0

    for phase in ("fill", "steady"):
        cpu = s["cpu"][phase]
        assert cpu["json"] > 0 and cpu["json_bytes"] > 0
        assert min(cpu["parse"], cpu["compute"], cpu["render"]) >= 0
        assert cpu["work"] <= cpu["total"]
    assert s["cpu"]["fill"]["json_bytes"] > s["cpu"]["steady"]["json_bytes"]

    scrape = s["scrape"]
    assert scrape["series"] > 50  # per-agent series for every agent with data
    for server in ("floor", "exporter", "prometheus_client"):
        figures = scrape[server]
        assert figures["scrapes"] >= 8  # 4 scrapers x 2
        assert 0 < figures["p50"] <= figures["p99"]
    assert scrape["floor"]["bytes"] == scrape["page_bytes"]
    # The exporter's process_* values are read at each scrape: their digits may differ.
    assert abs(scrape["exporter"]["bytes"] - scrape["page_bytes"]) <= 64

    assert 10 * 1024 < s["memory"]["peak_rss_kib"] < 2 * 1024 * 1024
    growth = data["growth"]
    assert growth["polls"] == 12 and len(growth["rss_kib"]) >= 2
