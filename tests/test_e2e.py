"""End to end through the real path: simulator process -> exporter process -> Prometheus.

Prometheus scrapes the exporter every second; the metrics are read back through its query API.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request
import zlib
from pathlib import Path

import pytest

from exporter import process_metrics
from exporter.exposition import SAMPLE_NAMES
from tests.promql_inventory import promql_inventory, rule_files
from tests.support.procs import (
    Process,
    Prometheus,
    free_port,
    http_get,
    require_binary,
    start_exporter,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TEAM_METRICS = [
    "rocketchat_omnichannel_agents_active",
    "rocketchat_omnichannel_available_agents_min",
    "rocketchat_omnichannel_available_agents_max",
    "rocketchat_omnichannel_available_agents_avg",
    "rocketchat_omnichannel_unstaffed_seconds",
    "rocketchat_omnichannel_understaffed_seconds",
]
AGENT_WINDOW_METRICS = [
    "rocketchat_omnichannel_agent_available_seconds",
    "rocketchat_omnichannel_agent_available_ratio",
    "rocketchat_omnichannel_agent_service_intervals",
]
SERVER_METRICS = [
    "rocketchat_omnichannel_up",
    "rocketchat_omnichannel_last_success_timestamp_seconds",
    "rocketchat_omnichannel_poll_duration_seconds",
    "rocketchat_omnichannel_agents_truncated",
    "rocketchat_omnichannel_required_agents",
]


def start_simulator(tmp: Path, agents: int = 20, *extra: str) -> tuple[Process, str]:
    port = free_port()
    proc = Process(
        [
            sys.executable,
            "-m",
            "exporter",
            "simulate",
            "--listen",
            f"127.0.0.1:{port}",
            "--agents",
            str(agents),
            "--user-id",
            "e2e-user",
            "--auth-token",
            "e2e-token-XYZ",
            "--rate-limit",
            "0",
            "--departments",
            "3",
            "--rooms-every",
            "3",
            *extra,
        ],
        tmp / "simulator.log",
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: http_get(url + "/api/info")[0] == 200, 20, "simulator up")
    return proc, url


def write_config(tmp: Path, sim_url: str, **extra: str) -> Path:
    (tmp / "user-id").write_text("e2e-user\n")
    (tmp / "token").write_text("e2e-token-XYZ\n")
    cfg = tmp / "config.yaml"
    cfg.write_text(
        f"""\
poll_interval: 2s
windows: [1h, 8h, 24h, 7d, today, yesterday]
departments: all
service_level:
  per_department: true
staffing:
  default: 2
  rules:
    - days: mon-sun
      from: "00:00"
      to: "24:00"
      agents: 1
      department: Department 1
servers:
  - name: sim
    url: {sim_url}
    user_id_file: user-id
    auth_token_file: token
    timezone: UTC
"""
    )
    return cfg


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("e2e")
    procs: list = []
    try:
        sim, sim_url = start_simulator(tmp_path)
        procs.append(sim)
        exporter, url = start_exporter(write_config(tmp_path, sim_url), tmp_path)
        procs.append(exporter)
        wait_for(lambda: http_get(url + "/readyz")[0] == 200, 60, "exporter ready")
        prom = Prometheus(
            tmp_path, [url.removeprefix("http://")], rule_files=[str(p) for p in rule_files()]
        )
        procs.append(prom)
        yield url, prom, exporter
    finally:
        for p in reversed(procs):
            p.stop()


def test_prometheus_scrapes_every_metric_from_the_real_exporter(stack):
    url, prom, exporter = stack
    wait_for(lambda: prom.query("rocketchat_omnichannel_up == 1"), 30, "up == 1 in prometheus")
    for name in SERVER_METRICS:
        assert prom.query(name), f"{name} missing in prometheus"
    for name in TEAM_METRICS:
        windows = {r["metric"]["window"] for r in prom.query(name)}
        assert windows == {"1h", "8h", "24h", "7d", "today", "yesterday"}, name
    for name in AGENT_WINDOW_METRICS:
        assert prom.query(f'{name}{{window="7d"}}'), name
    statuses = {r["metric"]["status"] for r in prom.query("rocketchat_omnichannel_agents")}
    assert statuses == {"available", "away", "busy", "offline"}
    # Per-agent 7d ratios are real fractions, and at least one agent worked this week.
    ratios = [
        float(r["value"][1])
        for r in prom.query('rocketchat_omnichannel_agent_available_ratio{window="7d"}')
    ]
    assert all(0 <= r <= 1 for r in ratios) and max(ratios) > 0
    codes = {r["metric"]["code"] for r in prom.query("rocketchat_omnichannel_api_requests_total")}
    assert codes == {"200"}
    assert prom.query("rocketchat_omnichannel_exporter_build_info")


def test_the_real_process_emits_every_registered_metric(stack):
    """SAMPLE_NAMES is what dashboards and rules are checked against: it must be real."""
    url, _prom, _exporter = stack
    _, body = http_get(url + "/metrics")
    emitted = {
        line.split("{")[0].split(" ")[0]
        for line in body.decode().splitlines()
        if line and not line.startswith("#")
    }
    assert emitted == set(SAMPLE_NAMES) | set(process_metrics.METRIC_NAMES)


def test_endpoints_and_secrets(stack):
    url, _prom, exporter = stack
    status, body = http_get(url + "/")
    assert status == 200 and b"sim" in body and b"metrics" in body
    assert http_get(url + "/healthz")[0] == 200
    assert http_get(url + "/nope")[0] == 404
    _, metrics = http_get(url + "/metrics")
    for text in (body, metrics, exporter.log().encode()):
        assert b"e2e-token-XYZ" not in text
        assert b"e2e-user" not in text


def test_every_dashboard_query_returns_data_and_every_rule_evaluates(stack):
    """Grafana cannot run here: evaluating each panel query in Prometheus proves they work."""
    _url, prom, _exporter = stack
    # rate() needs two samples inside the range: wait for a few scrapes.
    wait_for(
        lambda: prom.query("count_over_time(rocketchat_omnichannel_up[1m]) >= 5"), 60, "5 scrapes"
    )
    rules_loaded = prom.api("rules")["groups"]
    assert rules_loaded, "prometheus loaded no rule groups"
    assert all(r.get("health") != "err" for g in rules_loaded for r in g["rules"])
    empty = []
    for source, expr in promql_inventory():
        result = prom.query(expr)  # raises on an invalid query
        if source.startswith("dashboard") and not result:
            empty.append(f"{source}: {expr}")
    assert not empty, "dashboard queries without data:\n" + "\n".join(empty)


def test_gzip_page_is_one_member_that_promtool_and_prometheus_read_whole(stack):
    """/metrics gzipped: the page deflated once per poll, then process_* and build_info
    deflated per scrape, in one gzip member; Prometheus must see both parts."""
    url, prom, _exporter = stack
    req = urllib.request.Request(url + "/metrics", headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.headers["Content-Encoding"] == "gzip"
        raw = resp.read()
    one = zlib.decompressobj(16 + zlib.MAX_WBITS)
    text = one.decompress(raw) + one.flush()
    assert one.eof and not one.unused_data  # one member, CRC and size checked
    assert b"\nprocess_cpu_seconds_total " in text
    check = subprocess.run(
        [require_binary("promtool"), "check", "metrics"], input=text, capture_output=True
    )
    assert check.returncode == 0 and check.stdout + check.stderr == b"", check.stderr
    # Prometheus may not have scraped yet when this test runs first (~6 s after start).
    info = wait_for(
        lambda: prom.query("rocketchat_omnichannel_exporter_build_info"), 60, "build_info"
    )
    assert {"version", "revision", "python_version"} <= set(info[0]["metric"])
    assert prom.query("process_start_time_seconds") and prom.query("process_open_fds")
