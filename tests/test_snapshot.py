"""Building a server snapshot from cached days, live status and streaks (pure)."""

from __future__ import annotations

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

from exporter.config.model import AgentFilter, Staffing, Window
from exporter.model import AgentDay, AgentLive, DayHistory, Interval, LiveStatus
from exporter.sessions import Streak
from exporter.snapshot import SnapshotInputs, build_snapshot

KOLKATA = ZoneInfo("Asia/Kolkata")
WINDOWS = (
    Window("1h", "duration", 3600),
    Window("today", "today"),
    Window("yesterday", "yesterday"),
)


def k(day: int, h: int, m: int = 0, s: int = 0) -> float:
    return datetime(2026, 11, day, h, m, s, tzinfo=KOLKATA).timestamp()


def days() -> list[DayHistory]:
    # Kolkata is UTC+05:30: these are server-local days.
    d24 = DayHistory(
        day=date(2026, 11, 24),
        agents={"alice": AgentDay("alice", (Interval(k(24, 23, 0), k(24, 23, 59, 59)),), 3599)},
        total=1,
    )
    d25 = DayHistory(
        day=date(2026, 11, 25),
        agents={
            "alice": AgentDay("alice", (Interval(k(25, 0), k(25, 1)),), 3600),
            "bot.x": AgentDay("bot.x", (Interval(k(25, 0), k(25, 0, 30)),), 1800),
        },
        total=3,  # one agent counted but not returned
    )
    return [d24, d25]


def inputs(**kw) -> SnapshotInputs:
    base = dict(
        server="in",
        tz=KOLKATA,
        days=days(),
        live=LiveStatus(
            agents=(AgentLive("alice", "online", True), AgentLive("carol", "away", True)),
            counts={},
        ),
        streaks={},
        windows=WINDOWS,
        agent_filter=AgentFilter(re.compile(".*"), re.compile(r"bot\..*")),
        staffing=None,
        include_open_sessions=True,
    )
    base.update(kw)
    return SnapshotInputs(**base)


def test_agents_windows_reported_and_filter():
    snap = build_snapshot(inputs(), now=k(25, 1, 30))
    rows = {r.agent: r for r in snap.agents}
    assert set(rows) == {"alice", "carol"}  # bot.x excluded; carol only live
    alice = dict(rows["alice"].windows)
    # 1h = [00:30, 01:30] local: alice 00:30-01:00 -> 1800 s.
    assert alice["1h"].seconds == 1800 and alice["1h"].intervals == 1
    # today (local) = [00:00, 01:30]: 3600 s of 5400.
    assert alice["today"].seconds == 3600 and abs(alice["today"].ratio - 3600 / 5400) < 1e-9
    assert alice["yesterday"].seconds == 3599
    assert dict(rows["alice"].reported) == {"today": 3600, "yesterday": 3599}
    assert rows["carol"].windows == ()  # no data: no series, not 0
    assert rows["carol"].available is True
    assert rows["alice"].last_available == k(25, 1)
    assert dict(snap.status_counts) == {"available": 1, "away": 1, "busy": 0, "offline": 0}
    assert snap.missing_agents == 1
    assert snap.required_agents is None
    team = dict(snap.team)
    assert team["1h"].active == 1 and team["1h"].unstaffed_seconds == 1800
    assert team["1h"].understaffed_seconds is None


def test_team_only_when_per_agent_is_off():
    snap = build_snapshot(
        inputs(agent_filter=AgentFilter(re.compile(".*"), None, per_agent=False)), now=k(25, 1, 30)
    )
    assert snap.agents == ()
    assert dict(snap.team)["today"].active == 2


def test_open_session_streak_and_staffing():
    staffing = Staffing(timezone="Asia/Kolkata", default=2)
    snap = build_snapshot(
        inputs(streaks={"alice": Streak(k(25, 1, 10), k(25, 1, 30))}, staffing=staffing),
        now=k(25, 1, 30),
    )
    alice = next(r for r in snap.agents if r.agent == "alice")
    # open part: max(streak 01:10, last closed 01:00, midnight) .. 01:30 = 1200 s
    assert alice.open_session_seconds == 1200
    assert dict(alice.windows)["1h"].seconds == 1800 + 1200
    assert snap.required_agents == 2
    team = dict(snap.team)["1h"]
    # required 2 all the time, at most one agent available: the whole hour is understaffed.
    assert team.understaffed_seconds == 3600
    assert team.unstaffed_seconds == 600  # 01:00-01:10
