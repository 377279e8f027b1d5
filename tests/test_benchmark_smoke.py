"""The benchmark (tests/benchmarks) at size S for a few polls, so that it cannot rot.

Asserts that it completes and that its figures are sane and consistent (measured requests at
or above the physical floor, byte-identical floors, old and new side by side), never a timing.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.benchmarks import cli, nginx

pytestmark = pytest.mark.slow  # runs the benchmark: full suite only (see docs/testing.md)

ROOT = Path(__file__).resolve().parents[1]


def _has_commit(rev: str) -> bool:
    probe = ["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"]
    return subprocess.run(probe, cwd=ROOT, capture_output=True).returncode == 0


def test_benchmark_runs_at_size_s_and_its_figures_are_sane(tmp_path, capsys):
    out = tmp_path / "bench.json"
    # A shallow clone may lack the baseline commit: then only main's code is measured.
    baseline = cli.DEFAULT_BASELINE if _has_commit(cli.DEFAULT_BASELINE) else "none"
    argv = ["--sizes", "S", "--polls", "2", "--growth-polls", "12", "--growth-size", "S"]
    argv += ["--scrape-seconds", "0.2", "--scrape-min", "2", "--json", str(out)]
    argv += ["--servers", "1,2", "--servers-size", "S", "--servers-rounds", "2"]
    argv += ["--baseline", baseline]
    assert cli.main(argv) == 0
    table = capsys.readouterr().out
    labels = ["floor (physical)", "floor: one per day", "API_Allow_Infinite_Count off"]
    labels += ["idle: floor, nginx", "polls running: exporter", "past part rebuilt"]
    labels += ["GC share", "N servers of size S", "peak RSS", "Machine:"]
    labels += ["S old", "S new"] if baseline != "none" else ["S"]
    for label in labels:
        assert label in table

    data = json.loads(out.read_text())
    assert data["machine"]["nproc"] >= 1 and data["machine"]["python"]
    (s,) = data["results"]
    assert s["size"] == "S" and s["agents"] == 50 and s["layout"] == "new"
    _check_size(s)
    rc = s["rocketchat"]
    # Main's code at 50 agents is at the floor: one request per day, then 1 + 1 per poll.
    assert (rc["fill_history"], rc["fill_status"]) == (8, 1)
    assert (rc["steady_history"], rc["steady_status"]) == (1, 1)
    assert rc["poll_interval"] == rc["poll_interval_metric"] == 60
    assert s["worst"]["midnight_builds"] >= 1  # the day changed once during the poll day

    for key in ("servers", "baseline_servers") if baseline != "none" else ("servers",):
        servers = data[key]
        assert set(servers["n"]) == {"1", "2"}
        for figures in servers["n"].values():
            assert 0 <= figures["publish_cpu"] <= figures["update_cpu"]
        assert servers["n"]["2"]["page_bytes"] > servers["n"]["1"]["page_bytes"]
        assert [f["fresh_parts"] for f in servers["n"].values()] == [1, 2]

    if baseline != "none":
        (old,) = data["baseline_results"]
        assert old["layout"] == "old" and old["code"] == "old"
        _check_size(old)
        assert data["baseline"]["commit"].startswith(cli.DEFAULT_BASELINE)
    growth = data["growth"]
    assert growth["polls"] == 12 and len(growth["rss_kib"]) >= 2


def _check_size(s: dict) -> None:
    """Figures every code must produce, each against its floor."""
    for rc in (s["rocketchat"], s["count_off"]):
        assert rc["fill_history"] >= s["rocketchat"]["floor_fill_history"] == 8
        assert rc["fill_status"] >= 1 and rc["steady_history"] >= 1 and rc["steady_status"] >= 1
        assert rc["fill_paced_seconds"] >= 0 and rc["poll_interval"] >= 60
    assert s["rocketchat"]["responses_429"] == 0
    assert s["rocketchat"]["responses_other_errors"] == 0

    for phase in ("fill", "steady"):
        cpu = s["cpu"][phase]
        assert cpu["json"] > 0 and cpu["json_bytes"] > 0
        assert min(cpu["parse"], cpu["compute"], cpu["render"]) >= 0
        assert cpu["work"] <= cpu["total"]
    assert s["cpu"]["fill"]["json_bytes"] > s["cpu"]["steady"]["json_bytes"]
    assert s["cpu"]["gc_per_poll"] >= 0 and 0 <= s["cpu"]["gc_share"] <= 1

    worst = s["worst"]
    assert worst["night_polls"] >= 1 and worst["polls"] > worst["night_polls"]
    assert worst["night_first_last"][0] == "23:50"
    for q in (worst["cpu"], worst["wall"]):
        assert 0 < q["p50"] <= q["p95"] <= q["max"]

    scrape = s["scrape"]
    assert scrape["series"] > 50  # per-agent series for every agent with data
    servers = ["exporter"] + (["nginx"] if nginx.binary() else [])
    for phase in ("idle", "polling"):
        for server in servers:
            for encoding in ("plain", "gzip"):
                figures = scrape[phase][server][encoding]
                assert figures["scrapes"] >= 8  # 4 scrapers x 2
                assert 0 < figures["p50"] <= figures["p99"]
    if nginx.binary():
        idle = scrape["idle"]
        assert idle["nginx"]["plain"]["bytes"] == scrape["page_bytes"]
        assert idle["nginx"]["gzip"]["bytes"] == scrape["gzip_bytes"] < scrape["page_bytes"]
        # The exporter's process_* values are read at each scrape: their digits may differ.
        for encoding in ("plain", "gzip"):
            sent = idle["exporter"][encoding]["bytes"]
            assert abs(sent - idle["nginx"][encoding]["bytes"]) <= 64
    else:
        assert scrape["nginx_skipped"] == nginx.SKIPPED and scrape["idle"]["nginx"] is None
    assert scrape["polling"]["polls"] >= 1
    assert 10 * 1024 < s["memory"]["peak_rss_kib"] < 2 * 1024 * 1024
