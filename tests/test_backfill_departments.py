"""backfill with departments: per-department series (exporter/backfill_departments.py).

The proof runs through real parts as in tests/test_backfill.py (the same scripted sessions):
the simulator with departments over real HTTP, the backfill command as a process, the real
`promtool tsdb create-blocks-from openmetrics`, the real Prometheus on the blocks; the
expected values are worked out by hand from the sessions and today's membership.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from exporter.simulator import ManualClock, Simulator, SimulatorConfig, serve
from tests.support.procs import require_binary
from tests.test_backfill import (
    CONFIG,
    SESSIONS,
    ZONE,
    _prometheus,
    _value,
    create_blocks,
    run,
    utc,
)

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
    prom, url = _prometheus(tmp_path, create_blocks(promtool, out, tmp_path))
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
    got = department_series(Client(), config, config.servers[0], live)
    assert [(d.label, sorted(d.members), d.staffing is not None) for d in got] == [
        ("Sales", ["ann"], True),
        ("d2", ["bob"], True),  # a second "Sales": labelled by its id, as live; the rule
        ("Ops", ["bob"], True),  # names "Sales", so both Sales departments get it
        ("(none)", ["cid", "dan"], False),
    ]


def test_a_rerun_in_another_process_resumes_with_several_holidays(dsim, tmp_path):
    """The settings a rerun must match are the same in every process: a schedule's holidays
    (a frozenset of dates, whose order follows the per-process string hash) in date order."""
    path = tmp_path / "holidays.yaml"
    holidays = "  holidays: [2026-12-24, 2026-12-25, 2026-12-26, 2026-12-31, 2027-01-01]\n"
    text = _department_config(dsim[1].url).replace("  rules:\n", holidays + "  rules:\n", 1)
    path.write_text(text)
    out = tmp_path / "days"
    for seed in ("1", "2", "3"):
        proc = subprocess.run(
            [
                sys.executable, "-m", "exporter", "backfill",
                "--config.file", str(path),
                "--from", "2026-10-26", "--to", "2026-10-26",
                "--output", f"{out}/",
                "--progress", "lines",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )  # fmt: skip
        assert proc.returncode == 0, (seed, proc.stderr)
        assert "already written" in proc.stderr or seed == "1"
