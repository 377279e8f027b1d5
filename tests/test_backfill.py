"""backfill: Rocket.Chat's history as timestamped OpenMetrics (exporter/backfill.py).

The proof runs through real parts: the simulator over real HTTP, the backfill command as a
process, the real `promtool tsdb create-blocks-from openmetrics`, the real Prometheus on the
blocks; the expected values are worked out by hand from the scripted sessions below.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from exporter import backfill
from exporter.backfill import Progress
from exporter.rocketchat.client import RocketChatClient
from exporter.simulator import ManualClock, Simulator, SimulatorConfig, serve
from tests.support.procs import Process, free_port, http_get, require_binary, wait_for

ZONE = "Europe/Berlin"  # CEST (+2) until 2026-10-25 03:00, then CET (+1): that day has 25 h


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


# Scripted sessions, in UTC (local Berlin time in the comments).
SESSIONS = {
    # Sat 22:00 CEST -> Sun 01:30 CEST: across local midnight (Rocket.Chat stores two entries)
    "ann": [("2026-10-24T20:00:00", "2026-10-24T23:30:00")],
    # Sun 01:00 CEST -> 04:00 CET: across the DST change (4 real hours)
    "bob": [("2026-10-24T23:00:00", "2026-10-25T03:00:00")],
    # 02:30 CEST (first pass) -> 02:30 CET (second pass): one real hour, same wall clock
    "cid": [("2026-10-25T00:30:00", "2026-10-25T01:30:00")],
    # Mon 08:00-12:00 CET
    "dee": [("2026-10-26T07:00:00", "2026-10-26T11:00:00")],
    # Mon 09:00-10:00 CET, away while available (history counts it: a session is open)
    "eve": [("2026-10-26T08:00:00", "2026-10-26T09:00:00", "away")],
}

CONFIG = """\
windows: [1h, today]
staffing:
  timezone: Europe/Berlin
  default: 0
  rules:
    - days: [mon, tue, wed, thu, fri]
      from: "08:00"
      to: "18:00"
      agents: 2
    - days: [sat, sun]
      from: "01:00"
      to: "03:00"
      agents: 3
servers:
  - name: main
    url: {url}
    user_id: sim-user
    auth_token: sim-token
    timezone: Europe/Berlin
"""

# (instant UTC, available agents, required, understaffed), worked out from SESSIONS and
# the staffing rules by hand.
TEAM_EXPECTED = [
    ("2026-10-24T21:00:00", 1, 0, 0),  # Sat 23:00 CEST: ann
    ("2026-10-24T21:59:00", 1, 0, 0),  # Sat 23:59 CEST: ann, before the midnight split
    ("2026-10-24T22:00:00", 1, 0, 0),  # Sun 00:00 CEST: ann, after it (second entry)
    ("2026-10-24T23:15:00", 2, 3, 1),  # Sun 01:15 CEST: ann + bob; weekend rule: 3
    ("2026-10-25T00:45:00", 2, 3, 1),  # 02:45 CEST (first pass): bob + cid
    ("2026-10-25T01:45:00", 1, 3, 1),  # 02:45 CET (second pass): bob; the rule holds again
    ("2026-10-25T02:30:00", 1, 0, 0),  # 03:30 CET: bob, the rule is over
    ("2026-10-25T03:30:00", 0, 0, 0),  # 04:30 CET: nobody
    ("2026-10-26T08:30:00", 2, 2, 0),  # Mon 09:30 CET: dee + eve (away counts)
    ("2026-10-26T10:30:00", 1, 2, 1),  # Mon 11:30 CET: dee
    ("2026-10-26T17:30:00", 0, 0, 0),  # Mon 18:30 CET
]
AGENT_EXPECTED = [
    ("ann", "2026-10-24T22:00:00", 1),
    ("ann", "2026-10-24T23:45:00", 0),
    ("bob", "2026-10-25T01:45:00", 1),
    ("cid", "2026-10-25T00:45:00", 1),
    ("cid", "2026-10-25T01:45:00", 0),
    ("eve", "2026-10-26T08:30:00", 1),
    ("eve", "2026-10-26T09:30:00", 0),
]


@pytest.fixture
def sim():
    simulator = Simulator(
        SimulatorConfig(agents=0, timezone=ZONE), clock=ManualClock(utc("2026-10-28T12:00:00"))
    )
    for name, sessions in SESSIONS.items():
        for start, end, *presence in sessions:
            simulator.add_session(name, utc(start), utc(end), presence=(presence or ["online"])[0])
    server = serve(simulator, "127.0.0.1", 0)
    yield simulator, server
    server.stop()


@pytest.fixture
def config(sim, tmp_path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(url=sim[1].url))
    return path


def run(config: Path, *args: str) -> tuple[int, str]:
    err = io.StringIO()
    old = sys.stderr
    sys.stderr = err
    try:
        rc = backfill.main(["--config.file", str(config), "--progress", "lines", *args])
    finally:
        sys.stderr = old
    return rc, err.getvalue()


def history_requests(simulator: Simulator) -> int:
    return simulator.request_total("history")


# ---- the proof through real parts ----------------------------------------------------------


def create_blocks(promtool: str, openmetrics: Path, tmp_path: Path) -> Path:
    """The real `promtool tsdb create-blocks-from openmetrics` into a fresh data dir."""
    data = tmp_path / "data"
    data.mkdir()
    blocks = subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(openmetrics), str(data)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert blocks.returncode == 0, blocks.stderr + blocks.stdout
    return data


def _prometheus(tmp: Path, data: Path) -> tuple[Process, str]:
    binary = require_binary("prometheus")
    port = free_port()
    cfg = tmp / "prometheus.yml"
    cfg.write_text(json.dumps({"global": {"scrape_interval": "15s"}, "scrape_configs": []}))
    proc = Process(
        [
            binary,
            f"--config.file={cfg}",
            f"--storage.tsdb.path={data}",
            "--storage.tsdb.retention.time=100y",  # the blocks are weeks old: keep them
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        tmp / "prometheus.log",
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: http_get(url + "/-/ready")[0] == 200, 30, "prometheus ready")
    return proc, url


def _query(url: str, expr: str, at: float) -> list[dict]:
    import urllib.parse

    status, body = http_get(
        f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": at})
    )
    doc = json.loads(body)
    assert status == 200 and doc["status"] == "success", doc
    return doc["data"]["result"]


def _value(url: str, expr: str, at: float) -> float | None:
    result = _query(url, expr, at)
    assert len(result) <= 1, result
    return float(result[0]["value"][1]) if result else None


@pytest.mark.slow  # real processes: full suite only (docs/testing.md)
def test_backfilled_blocks_in_real_prometheus_match_the_scripted_sessions(sim, config, tmp_path):
    promtool = require_binary("promtool")
    out = tmp_path / "backfill.om"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "exporter",
            "backfill",
            "--config.file",
            str(config),
            "--from",
            "2026-10-24",
            "--to",
            "2026-10-26",
            "--output",
            str(out),
            "--label",
            "job=rocketchat-omnichannel",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert text.endswith("# EOF\n")
    prom, url = _prometheus(tmp_path, create_blocks(promtool, out, tmp_path))
    try:
        for at, available, required, short in TEAM_EXPECTED:
            t = utc(at)
            sel = '{job="rocketchat-omnichannel",server="main"}'
            got = (
                _value(url, "rocketchat_omnichannel_backfill_available_agents" + sel, t),
                _value(url, "rocketchat_omnichannel_required_agents" + sel, t),
                _value(url, "rocketchat_omnichannel_backfill_understaffed" + sel, t),
                _value(url, "sum(rocketchat_omnichannel_agent_available" + sel + ")", t),
            )
            assert got == (available, required, short, available), at
        for agent, at, expected in AGENT_EXPECTED:
            expr = f'rocketchat_omnichannel_agent_available{{server="main",agent="{agent}"}}'
            assert _value(url, expr, utc(at)) == expected, (agent, at)
        # The range ends at Tuesday's local midnight (--to includes Monday): nothing after.
        assert (
            _value(url, "rocketchat_omnichannel_required_agents", utc("2026-10-26T23:06:00"))
            is None
        )
        # The 25-hour day: 1500 one-minute samples of each team series.
        count = _value(
            url,
            "count_over_time(rocketchat_omnichannel_backfill_available_agents[25h])",
            utc("2026-10-25T22:59:59"),
        )
        assert count == 1500
    finally:
        prom.stop()


# ---- resuming, the output modes ------------------------------------------------------------


def test_a_directory_gets_one_complete_document_per_day_and_a_rerun_fetches_nothing(
    sim, config, tmp_path
):
    simulator, _ = sim
    out = tmp_path / "days"
    rc, err = run(config, "--from", "2026-10-24", "--to", "2026-10-26", "--output", f"{out}/")
    assert rc == 0, err
    files = sorted(p.name for p in out.glob("*.om"))
    assert files == ["main-2026-10-24.om", "main-2026-10-25.om", "main-2026-10-26.om"]
    for f in files:
        text = (out / f).read_text()
        assert text.endswith("# EOF\n") and text.count("# TYPE") == 4
    first = history_requests(simulator)
    assert first == 4  # one range check, then one request per day
    rc, err = run(config, "--from", "2026-10-24", "--to", "2026-10-26", "--output", f"{out}/")
    assert rc == 0, err
    assert history_requests(simulator) == first
    # Extending the range fetches only the new day (a quiet one: written as zeros).
    rc, err = run(config, "--from", "2026-10-24", "--to", "2026-10-27", "--output", f"{out}/")
    assert rc == 0, err
    assert history_requests(simulator) == first + 1
    assert (
        'rocketchat_omnichannel_backfill_available_agents{server="main"} 0 '
        in (out / "main-2026-10-27.om").read_text()
    )


def test_an_interrupted_run_resumes_without_refetching_finished_days(
    sim, config, tmp_path, monkeypatch
):
    simulator, _ = sim
    real = RocketChatClient.fetch_history_day
    calls = []

    def interrupted(self, day):
        calls.append(day)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, day)

    monkeypatch.setattr(RocketChatClient, "fetch_history_day", interrupted)
    out = tmp_path / "one.om"
    args = ("--from", "2026-10-24", "--to", "2026-10-26", "--output", str(out))
    rc, err = run(config, *args)
    assert rc == backfill.EXIT_INTERRUPTED
    assert "1 days are done; rerun the same command" in err
    assert not out.exists()
    monkeypatch.setattr(RocketChatClient, "fetch_history_day", real)
    simulator.reset_requests()
    rc, err = run(config, *args)
    assert rc == 0, err
    # Only the two days left: a day with history is written, so no range check is needed.
    assert history_requests(simulator) == 2
    text = out.read_text()
    assert text.count("# TYPE rocketchat_omnichannel_backfill_available_agents") == 1
    assert text.endswith("# EOF\n")


def test_other_settings_on_the_same_output_are_refused(sim, config, tmp_path):
    out = f"{tmp_path}/days/"
    assert run(config, "--from", "2026-10-24", "--to", "2026-10-24", "--output", out)[0] == 0
    rc, err = run(
        config, "--from", "2026-10-24", "--to", "2026-10-24", "--output", out, "--step", "30s"
    )
    assert rc == 2
    assert "written with other settings" in err and "delete" in err


def test_days_before_the_history_starts_are_not_written_as_zeros(sim, config, tmp_path):
    out = tmp_path / "days"
    rc, err = run(config, "--from", "2026-10-20", "--to", "2026-10-24", "--output", f"{out}/")
    assert rc == 0, err
    assert sorted(p.name for p in out.glob("*.om")) == ["main-2026-10-24.om"]
    assert "no history yet (skipped)" in err


# ---- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--from", "2026-10-26", "--to", "2026-10-24"),
            "--from 2026-10-26T00:00:00+01:00 is not before --to",
        ),
        (("--from", "2026-10-24", "--to", "2999-01-01"), "is in the future"),
        (("--from", "yesterday"), "--from 'yesterday': not a date or an instant"),
        (("--from", "2026-10-24", "--step", "7s"), "--step '7s'"),
        (("--from", "2026-10-24", "--step", "10m"), "--step '10m'"),
        (("--from", "2026-10-24", "--label", "server=x"), "--label 'server=x'"),
        (("--from", "2026-10-24", "--server", "nope"), "--server nope: not in the configuration"),
        (
            (
                "--from",
                "2026-10-24",
                "--to",
                "2026-10-26",
                "--until-existing",
                "2026-10-25T12:00:00Z",
            ),
            "overlaps what Prometheus already has",
        ),
    ],
)
def test_usage_errors_exit_2_and_say_what_to_change(config, tmp_path, args, message):
    rc, err = run(config, *args, "--output", f"{tmp_path}/out/")
    assert rc == 2
    assert message in err, err


def test_until_existing_ends_the_range_there_and_force_overlap_allows_more(sim, config, tmp_path):
    out = tmp_path / "days"
    rc, err = run(
        config,
        "--from",
        "2026-10-24",
        "--until-existing",
        "2026-10-25T12:00:00Z",
        "--output",
        f"{out}/",
    )
    assert rc == 0, err
    last = (out / "main-2026-10-25.om").read_text().splitlines()[-2]
    assert last.endswith(f" {int(utc('2026-10-25T11:59:00'))}")
    rc, err = run(
        config,
        "--from", "2026-10-24",
        "--to", "2026-10-26",
        "--until-existing", "2026-10-25T12:00:00Z",
        "--force-overlap",
        "--output", f"{tmp_path}/forced/",
    )  # fmt: skip
    assert rc == 0, err


def test_a_range_rocket_chat_keeps_nothing_for_is_refused(sim, config, tmp_path):
    rc, err = run(
        config, "--from", "2026-09-01", "--to", "2026-09-30", "--output", f"{tmp_path}/o/"
    )
    assert rc == 2
    assert "no availability history from 2026-09-01 to 2026-09-30" in err
    assert "choose a later --from" in err


def test_an_unwritable_output_is_refused_before_any_request(sim, config, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    rc, err = run(config, "--from", "2026-10-24", "--output", f"{blocker}/out/")
    assert rc == 2
    assert f"--output {blocker}/out/" in err and "writable" in err
    assert sim[0].request_total() == 0


def test_a_server_without_the_enterprise_licence_is_a_clear_error(sim, config, tmp_path):
    sim[0].licence = False
    rc, err = run(
        config, "--from", "2026-10-24", "--to", "2026-10-24", "--output", f"{tmp_path}/o/"
    )
    assert rc == 1
    assert "Enterprise licence" in err
    assert "sim-token" not in err


def test_an_invalid_configuration_exits_2(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("servers: nope\n")
    rc, err = run(path, "--from", "2026-10-24")
    assert rc == 2 and "invalid configuration" in err


def test_the_cli_routes_backfill_to_its_own_options():
    proc = subprocess.run(
        [sys.executable, "-m", "exporter", "backfill", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )
    assert proc.returncode == 0
    assert "--until-existing" in proc.stdout and "--step" in proc.stdout


# ---- progress ------------------------------------------------------------------------------


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_with_eta_on_a_terminal_and_lines_otherwise():
    from datetime import date

    t = [0.0]
    tty = _Tty()
    bar = Progress(4, "auto", tty, clock=lambda: t[0])
    t[0] = 10.0
    bar.day("main", date(2026, 10, 24), "written", True)
    assert tty.getvalue().startswith("\r[")
    assert "1/4 days" in tty.getvalue() and "ETA 0m30s" in tty.getvalue()
    plain = io.StringIO()
    lines = Progress(4, "auto", plain, clock=lambda: t[0])
    lines.day("main", date(2026, 10, 24), "already written", False)
    assert plain.getvalue() == "backfill: 1/4 days, ETA ?: main 2026-10-24 already written\n"


# ---- pacing, the day's samples -------------------------------------------------------------


def test_requests_are_paced_under_the_rate_limit_not_refused(config, tmp_path):
    # Real time: the simulator's rate-limit window runs on its clock, which must move.
    simulator = Simulator(SimulatorConfig(agents=0, timezone=ZONE, rate_limit=2, rate_window=2.0))
    simulator.add_session("ann", utc("2026-10-24T08:00:00"), utc("2026-10-24T09:00:00"))
    with serve(simulator, "127.0.0.1", 0) as server:
        path = tmp_path / "paced.yaml"
        path.write_text(CONFIG.format(url=server.url))
        rc, err = run(
            path, "--from", "2026-10-24", "--to", "2026-10-26", "--output", f"{tmp_path}/p/"
        )
    assert rc == 0, err
    statuses = {status for (route, status) in simulator.requests if route == "history"}
    assert statuses == {200}  # 4 history requests at 2 per 2 s: waited for, never a 429


def _day(samples_of: dict[str, list[tuple[float, float]]], **agents_section):
    import re
    from datetime import date
    from zoneinfo import ZoneInfo

    from exporter.backfillday import DayInput, Grid, write_day
    from exporter.config.model import AgentFilter
    from exporter.model import AgentDay, DayHistory, Interval

    history = DayHistory(
        date(2026, 10, 24),
        {
            name: AgentDay(name, tuple(Interval(s, e) for s, e in ivs), None)
            for name, ivs in samples_of.items()
        },
        len(samples_of),
    )
    t0 = utc("2026-10-24T00:00:00")
    inp = DayInput(
        "main",
        ZoneInfo("UTC"),
        history,
        Grid.between(t0, t0 + 300, 60),
        None,
        AgentFilter(**{"include": re.compile(".*"), "exclude": None, **agents_section}),
        {},
    )
    out = io.BytesIO()
    write_day(inp, out.write)
    return t0, out.getvalue().decode()


def test_an_agent_counts_from_its_start_up_to_but_not_at_its_end():
    t0, text = _day({"ann": [(utc("2026-10-24T00:01:00"), utc("2026-10-24T00:03:00"))]})
    agent = [
        line.split()[1]
        for line in text.splitlines()
        if line.startswith("rocketchat_omnichannel_agent_available{")
    ]
    assert agent == ["0", "1", "1", "0", "0"]  # 00:00 .. 00:04; 00:03 is the end: not available
    assert f'agent="ann"}} 1 {int(t0) + 60}' in text
    assert "required_agents" not in text  # no staffing schedule: no requirement series


def test_per_agent_false_and_excluded_agents_write_no_agent_series():
    import re

    session = [(utc("2026-10-24T00:00:00"), utc("2026-10-24T00:10:00"))]
    _, text = _day({"ann": session, "bot": session}, per_agent=False)
    assert "agent_available" not in text
    assert 'backfill_available_agents{server="main"} 2 ' in text
    _, text = _day({"ann": session, "bot": session}, exclude=re.compile("bot"))
    assert 'agent="bot"' not in text and 'backfill_available_agents{server="main"} 1 ' in text
