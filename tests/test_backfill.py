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
    data = tmp_path / "data"
    data.mkdir()
    blocks = subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(out), str(data)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert blocks.returncode == 0, blocks.stderr + blocks.stdout
    prom, url = _prometheus(tmp_path, data)
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


# ---- departments ---------------------------------------------------------------------------

# Today's membership (read once; applied to every past day): dee is in both, cid in none.
MEMBERS = {"ann": ["Sales"], "bob": ["Billing"], "dee": ["Sales", "Billing"], "eve": ["Billing"]}
DEPARTMENT_RULES = """\
    - {days: [mon, tue, wed, thu, fri], from: "08:00", to: "18:00", agents: 2, department: Billing}
    - {days: [sat, sun], from: "01:00", to: "03:00", agents: 1, department: Sales}
"""


def _department_config(url: str, select: str = "all") -> str:
    text = CONFIG.format(url=url).replace("servers:", DEPARTMENT_RULES + "servers:", 1)
    return f"departments: {select}\n" + text


# (instant UTC, department, available, required, understaffed; None: no series), worked out
# by hand from SESSIONS, MEMBERS and DEPARTMENT_RULES (the (none) group has no rule).
DEPARTMENT_EXPECTED = [
    ("2026-10-24T21:00:00", "Sales", 1, 0, 0),  # Sat 23:00 CEST: ann
    ("2026-10-24T21:00:00", "Billing", 0, 0, 0),
    ("2026-10-24T21:00:00", "(none)", 0, None, None),
    ("2026-10-24T22:00:00", "Sales", 1, 0, 0),  # Sun 00:00 CEST: ann, across the split
    ("2026-10-24T23:15:00", "Sales", 1, 1, 0),  # Sun 01:15 CEST: ann (Sales), bob (Billing)
    ("2026-10-24T23:15:00", "Billing", 1, 0, 0),
    ("2026-10-25T00:45:00", "Sales", 0, 1, 1),  # 02:45 CEST (first pass): bob + cid
    ("2026-10-25T00:45:00", "Billing", 1, 0, 0),
    ("2026-10-25T00:45:00", "(none)", 1, None, None),
    ("2026-10-25T01:45:00", "Sales", 0, 1, 1),  # 02:45 CET (second pass): the rule again
    ("2026-10-25T01:45:00", "(none)", 0, None, None),  # cid's hour is over
    ("2026-10-25T02:30:00", "Sales", 0, 0, 0),  # 03:30 CET: the Sales rule is over
    ("2026-10-25T02:30:00", "Billing", 1, 0, 0),  # bob until 04:00 CET
    ("2026-10-26T08:30:00", "Sales", 1, 0, 0),  # Mon 09:30 CET: dee + eve
    ("2026-10-26T08:30:00", "Billing", 2, 2, 0),  # dee counts in both
    ("2026-10-26T09:30:00", "Billing", 1, 2, 1),  # Mon 10:30 CET: dee; eve stopped at 10:00
    ("2026-10-26T09:30:00", "Sales", 1, 0, 0),
    ("2026-10-26T17:30:00", "Billing", 0, 0, 0),  # Mon 18:30 CET: the rule is over
]


@pytest.fixture
def dsim():
    """The scripted sessions plus two departments and today's memberships."""
    simulator = Simulator(
        SimulatorConfig(agents=0, timezone=ZONE), clock=ManualClock(utc("2026-10-28T12:00:00"))
    )
    for name, sessions in SESSIONS.items():
        for start, end, *presence in sessions:
            simulator.add_session(name, utc(start), utc(end), presence=(presence or ["online"])[0])
    ids = {name: simulator.omni.add_department(name) for name in ("Sales", "Billing")}
    for agent, departments in MEMBERS.items():
        simulator.omni.assign(agent, *(ids[d] for d in departments))
    server = serve(simulator, "127.0.0.1", 0)
    yield simulator, server
    server.stop()


@pytest.fixture
def dconfig(dsim, tmp_path) -> Path:
    path = tmp_path / "departments.yaml"
    path.write_text(_department_config(dsim[1].url))
    return path


def _command(config: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable, "-m", "exporter", "backfill",
            "--config.file", str(config),
            "--from", "2026-10-24", "--to", "2026-10-26",
            "--output", str(out),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip


@pytest.mark.slow  # real processes: full suite only (docs/testing.md)
def test_backfilled_department_series_in_real_prometheus_match_the_hand_computed_figures(
    dsim, dconfig, tmp_path
):
    promtool = require_binary("promtool")
    out = tmp_path / "backfill.om"
    proc = _command(dconfig, out, "--label", "job=rocketchat-omnichannel")
    assert proc.returncode == 0, proc.stderr
    # Membership is read once for the whole range, not per day.
    assert dsim[0].request_total("departments") == 1
    assert dsim[0].request_total("agents") == 1
    data = tmp_path / "data"
    data.mkdir()
    blocks = subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(out), str(data)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert blocks.returncode == 0, blocks.stderr + blocks.stdout
    prom, url = _prometheus(tmp_path, data)
    try:
        for at, department, available, required, short in DEPARTMENT_EXPECTED:
            t = utc(at)
            sel = f'{{job="rocketchat-omnichannel",server="main",department="{department}"}}'
            got = (
                _value(url, "rocketchat_omnichannel_backfill_department_available_agents" + sel, t),
                _value(url, "rocketchat_omnichannel_department_required_agents" + sel, t),
                _value(url, "rocketchat_omnichannel_backfill_department_understaffed" + sel, t),
            )
            assert got == (available, required, short), (at, department)
        # Three departments (Sales, Billing, (none)); the server-wide figures are still there.
        t = utc("2026-10-26T08:30:00")
        count = _value(url, "count(rocketchat_omnichannel_backfill_department_available_agents)", t)
        assert count == 3
        assert _value(url, "rocketchat_omnichannel_backfill_available_agents", t) == 2
        # The 25-hour day: 1500 one-minute samples of each department series.
        count = _value(
            url,
            'count_over_time(rocketchat_omnichannel_backfill_department_available_agents{department="Sales"}[25h])',
            utc("2026-10-25T22:59:59"),
        )
        assert count == 1500
    finally:
        prom.stop()


def _families(text: str) -> dict[str, str]:
    """Each family's lines (HELP, TYPE and samples) of one OpenMetrics document."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines(keepends=True):
        if line.startswith("# HELP "):
            name = line.split()[2]
        elif line == "# EOF\n":
            continue
        out.setdefault(name, []).append(line)
    return {k: "".join(v) for k, v in out.items()}


def test_departments_add_their_families_and_leave_every_other_byte_as_without(dsim, tmp_path):
    url = dsim[1].url
    off, on = tmp_path / "off.yaml", tmp_path / "on.yaml"
    off.write_text(CONFIG.format(url=url))
    on.write_text(_department_config(url))
    args = ("--from", "2026-10-24", "--to", "2026-10-26")
    assert run(off, *args, "--output", f"{tmp_path}/off/")[0] == 0
    rc, err = run(on, *args, "--output", f"{tmp_path}/on/")
    assert rc == 0, err
    for day in ("2026-10-24", "2026-10-25", "2026-10-26"):
        plain = (tmp_path / "off" / f"main-{day}.om").read_text()
        both = _families((tmp_path / "on" / f"main-{day}.om").read_text())
        extra = [
            "rocketchat_omnichannel_backfill_department_available_agents",
            "rocketchat_omnichannel_department_required_agents",
            "rocketchat_omnichannel_backfill_department_understaffed",
        ]
        assert list(both)[-3:] == extra
        # The server-wide schedule is the same (rules naming a department are not in it).
        assert "".join(v for k, v in both.items() if k not in extra) + "# EOF\n" == plain


def test_a_refused_department_route_warns_and_writes_the_server_wide_series_only(
    dsim, dconfig, tmp_path
):
    dsim[0].forbid("departments")
    rc, err = run(
        dconfig, "--from", "2026-10-26", "--to", "2026-10-26", "--output", f"{tmp_path}/o/"
    )
    assert rc == 0, err
    assert "refused the department list (HTTP 403" in err
    assert "server-wide series only" in err and "view-livechat-departments" in err
    text = (tmp_path / "o" / "main-2026-10-26.om").read_text()
    assert "department" not in text
    assert 'backfill_available_agents{server="main"} 2 ' in text


def test_unknown_membership_warns_and_writes_the_server_wide_series_only(dsim, dconfig, tmp_path):
    dsim[0].forbid("agents")  # the per-agent route: the exporter falls back to the chart
    rc, err = run(
        dconfig, "--from", "2026-10-26", "--to", "2026-10-26", "--output", f"{tmp_path}/o/"
    )
    assert rc == 0, err
    assert "does not list the agents' departments" in err
    assert "department" not in (tmp_path / "o" / "main-2026-10-26.om").read_text()


def test_a_department_list_writes_those_departments_and_warns_about_unknown_names(dsim, tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text(_department_config(dsim[1].url, "[Billing, Nope]"))
    rc, err = run(path, "--from", "2026-10-26", "--to", "2026-10-26", "--output", f"{tmp_path}/o/")
    assert rc == 0, err
    assert "Nope, Sales match no department" not in err  # Sales is a rule's name: it exists
    assert "Nope match no department on Rocket.Chat (existing: Billing, Sales)" in err
    text = (tmp_path / "o" / "main-2026-10-26.om").read_text()
    series = {
        line.split("{", 1)[1].split("}")[0]
        for line in text.splitlines()
        if line.startswith("rocketchat_omnichannel_backfill_department_available_agents{")
    }
    # Agents in no department keep their group, as live; Sales is not listed.
    assert series == {'server="main",department="Billing"', 'server="main",department="(none)"'}
    # Sales has a rule but is not listed: no requirement series for it either.
    assert 'department_required_agents{server="main",department="Sales"}' not in text


def test_departments_change_the_settings_of_an_output_and_reserve_the_department_label(
    dsim, dconfig, tmp_path
):
    off = tmp_path / "off.yaml"
    off.write_text(CONFIG.format(url=dsim[1].url))
    args = ("--from", "2026-10-26", "--to", "2026-10-26", "--output", f"{tmp_path}/o/")
    assert run(off, *args)[0] == 0
    rc, err = run(dconfig, *args)
    assert rc == 2 and "written with other settings" in err
    rc, err = run(dconfig, *args[:4], "--output", f"{tmp_path}/p/", "--label", "department=x")
    assert rc == 2 and "--label department=..." in err


def _department_day(departments, staffing=None, **agents_section):
    """write_day over 00:00..00:05 UTC (one-minute grid) with the given departments."""
    import re
    from datetime import date
    from zoneinfo import ZoneInfo

    from exporter.backfillday import DayInput, Grid, write_day
    from exporter.config.model import AgentFilter
    from exporter.model import AgentDay, DayHistory, Interval

    t0 = utc("2026-10-24T00:00:00")
    sessions = {"ann": [(60, 240)], "bob": [(120, 300)], "cid": [(0, 60)]}  # seconds after t0
    history = DayHistory(
        date(2026, 10, 24),
        {
            name: AgentDay(name, tuple(Interval(t0 + s, t0 + e) for s, e in ivs), None)
            for name, ivs in sessions.items()
        },
        len(sessions),
    )
    inp = DayInput(
        "main",
        ZoneInfo("UTC"),
        history,
        Grid.between(t0, t0 + 300, 60),
        staffing,
        AgentFilter(**{"include": re.compile(".*"), "exclude": None, **agents_section}),
        {},
        departments=tuple(departments),
    )
    out = io.BytesIO()
    offsets = write_day(inp, out.write)
    return out.getvalue().decode(), offsets


def _series(text: str, family: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith(f"rocketchat_omnichannel_{family}{{"):
            labels, value, _ = line.rsplit(" ", 2)
            out.setdefault(labels.split('department="')[1][:-2], []).append(value)
    return out


def test_department_series_count_each_member_in_every_department_it_is_in():
    from datetime import time

    from exporter.backfillday import DepartmentSeries
    from exporter.config.model import Staffing, StaffingRule

    every_day = frozenset(range(7))
    two = Staffing("UTC", 0, (StaffingRule(every_day, time(0, 2), time(0, 4), 2),), frozenset())
    deps = [
        DepartmentSeries("Sales", frozenset({"ann", "bob"}), two),
        DepartmentSeries('Bill "EU"\n', frozenset({"bob", "gone"})),  # gone: no history today
        DepartmentSeries("Empty", frozenset()),
    ]
    text, offsets = _department_day(deps)
    # Minutes 00:00..00:04: ann [1, 4), bob [2, 5), cid [0, 1).
    assert _series(text, "backfill_department_available_agents") == {
        'Bill \\"EU\\"\\n': ["0", "0", "1", "1", "1"],
        "Empty": ["0", "0", "0", "0", "0"],
        "Sales": ["0", "1", "2", "2", "1"],
    }
    assert _series(text, "department_required_agents") == {"Sales": ["0", "0", "2", "2", "0"]}
    assert _series(text, "backfill_department_understaffed") == {"Sales": ["0", "0", "0", "0", "0"]}
    # The families are whole and in FAMILIES order, after the server-wide ones.
    names = [n for n in offsets]
    assert names[-3:] == [
        "rocketchat_omnichannel_backfill_department_available_agents",
        "rocketchat_omnichannel_department_required_agents",
        "rocketchat_omnichannel_backfill_department_understaffed",
    ]
    # No schedule for any department: no requirement families.
    text, offsets = _department_day(deps[1:])
    assert "department_required_agents" not in text and "department_understaffed" not in text


def test_department_series_follow_the_agent_filter_even_without_per_agent_series():
    import re

    from exporter.backfillday import DepartmentSeries

    deps = [DepartmentSeries("Sales", frozenset({"ann", "bob"}))]
    text, _ = _department_day(deps, per_agent=False, exclude=re.compile("bob"))
    assert "agent_available{" not in text
    assert _series(text, "backfill_department_available_agents") == {
        "Sales": ["0", "1", "1", "1", "0"]
    }


def test_department_groups_and_schedules_are_the_live_exporters():
    """backfill builds its groups with the live function: same labels, (none), duplicates."""
    from exporter.backfill_departments import department_series
    from exporter.config import load_config
    from exporter.model import AgentLive, Department

    class Client:
        def fetch_departments(self):
            return (Department("d1", "Sales"), Department("d2", "Sales"), Department("d3", "Ops"))

    live = (
        AgentLive("ann", "online", True, departments=("d1",)),
        AgentLive("bob", "offline", False, departments=("d2", "d3")),
        AgentLive("cid", "online", True, departments=()),
        AgentLive("dan", "online", True, departments=None),  # not listed: in none, as live
    )
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(_department_config("http://127.0.0.1:1").replace("Billing", "Ops"))
    config = load_config(f.name)
    os.unlink(f.name)
    got = department_series(Client(), config, config.servers[0], live)  # type: ignore[arg-type]
    assert [(d.label, sorted(d.members), d.staffing is not None) for d in got] == [
        ("Sales", ["ann"], True),
        ("d2", ["bob"], True),  # a second "Sales": labelled by its id, as live; the rule
        ("Ops", ["bob"], True),  # names "Sales", so both Sales departments get it
        ("(none)", ["cid", "dan"], False),
    ]
