"""One server's complete picture after a successful poll, as plain frozen values.

Built once per poll from the history cache, the live status and the open-session streaks;
the exposition renders it, scrapes never touch it again. A snapshot is either complete or
not built at all: the poller keeps the previous one when anything failed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from exporter.availability import (
    AgentWindow,
    TeamWindow,
    agent_window,
    bridge_midnight_splits,
    team_windows,
    window_bounds,
)
from exporter.config.model import AgentFilter, Staffing, Window
from exporter.history import day_start, local_date
from exporter.model import DayHistory, Interval, LiveStatus, ParseStats
from exporter.sessions import Streak, open_session, with_open_sessions
from exporter.staffing import required_at, requirement_segments


@dataclass(frozen=True, slots=True)
class AgentRow:
    """Everything exported about one agent."""

    agent: str
    windows: tuple[tuple[str, AgentWindow], ...]  # (window name, stats), only windows with data
    reported: tuple[tuple[str, float], ...]  # (today|yesterday, Rocket.Chat's own seconds)
    last_available: float | None  # end of the latest closed interval
    available: bool | None  # live status; None when unknown (per-agent status not readable)
    open_session_seconds: float | None


@dataclass(frozen=True, slots=True)
class ServerSnapshot:
    server: str
    taken_at: float
    agents: tuple[AgentRow, ...]  # sorted by username; empty when per_agent is off
    team: tuple[tuple[str, TeamWindow], ...]  # (window name, stats)
    status_counts: tuple[tuple[str, int], ...]  # (status, count)
    required_agents: int | None  # None without a staffing schedule
    truncated: int
    anomalies: ParseStats


@dataclass(frozen=True, slots=True)
class SnapshotInputs:
    server: str
    tz: ZoneInfo
    days: Sequence[DayHistory]  # oldest first
    live: LiveStatus
    streaks: Mapping[str, Streak]
    windows: Sequence[Window]
    agent_filter: AgentFilter
    staffing: Staffing | None
    include_open_sessions: bool


def closed_intervals(days: Sequence[DayHistory], wants) -> dict[str, list[Interval]]:
    """Each wanted agent's closed intervals over all cached days, in time order.

    Days do not overlap, and each day's intervals are already merged, so concatenating the
    days oldest first keeps every list sorted and merged.
    """
    per_agent: dict[str, list[Interval]] = {}
    for day in days:
        for name, agent_day in day.agents.items():
            if not wants(name):
                continue
            per_agent.setdefault(name, []).extend(agent_day.intervals)
    return per_agent


def build_snapshot(inp: SnapshotInputs, now: float) -> ServerSnapshot:
    wants = inp.agent_filter.wants
    closed = closed_intervals(inp.days, wants)
    live_agents = {a.username: a for a in inp.live.agents or () if wants(a.username)}
    midnight = day_start(local_date(now, inp.tz), inp.tz)

    opened: dict[str, Interval] = {}
    if inp.include_open_sessions:
        for name, streak in inp.streaks.items():
            if not wants(name):
                continue
            last = closed.get(name)
            interval = open_session(streak, last[-1].end if last else None, midnight, now)
            if interval is not None:
                opened[name] = interval

    merged = {
        name: with_open_sessions(closed.get(name, ()), opened.get(name))
        for name in closed.keys() | opened.keys()
    }
    bounds = [window_bounds(w, now, inp.tz) for w in inp.windows]
    requirement = None
    if inp.staffing is not None and bounds:
        requirement = requirement_segments(
            inp.staffing, min(b[0] for b in bounds), max(b[1] for b in bounds)
        )
    # Per-agent figures keep Rocket.Chat's midnight split as stored; for team concurrency the
    # one-second hole it leaves would make every midnight look unstaffed, so bridge it.
    team_intervals = [bridge_midnight_splits(ivs, inp.tz) for ivs in merged.values()]
    team = team_windows(team_intervals, bounds, requirement)

    rows: tuple[AgentRow, ...] = ()
    if inp.agent_filter.per_agent:
        rows = _agent_rows(inp, closed, merged, live_agents, opened, bounds, now)

    return ServerSnapshot(
        server=inp.server,
        taken_at=now,
        agents=rows,
        team=tuple((w.name, t) for w, t in zip(inp.windows, team, strict=True)),
        status_counts=_status_counts(inp.live, live_agents, inp.agent_filter),
        required_agents=required_at(inp.staffing, now) if inp.staffing is not None else None,
        truncated=inp.days[-1].truncated if inp.days else 0,
        anomalies=sum((d.stats for d in inp.days), ParseStats()),
    )


def _agent_rows(inp, closed, merged, live_agents, opened, bounds, now) -> tuple[AgentRow, ...]:
    reported_days = _reported_days(inp, now)
    rows = []
    for name in sorted(merged.keys() | live_agents.keys()):
        intervals = merged.get(name, ())
        stats = []
        for w, (start, end) in zip(inp.windows, bounds, strict=True):
            aw = agent_window(intervals, start, end)
            if aw is not None:
                stats.append((w.name, aw))
        reported = tuple(
            (wname, day.agents[name].reported_seconds)
            for wname, day in reported_days
            if name in day.agents and day.agents[name].reported_seconds is not None
        )
        last_closed = closed.get(name)
        live = live_agents.get(name)
        open_iv = opened.get(name)
        rows.append(
            AgentRow(
                agent=name,
                windows=tuple(stats),
                reported=reported,
                last_available=last_closed[-1].end if last_closed else None,
                available=live.available if live is not None else None,
                open_session_seconds=(
                    (open_iv.end - open_iv.start if open_iv else 0.0) if live is not None else None
                ),
            )
        )
    return tuple(rows)


def _reported_days(inp: SnapshotInputs, now: float) -> list[tuple[str, DayHistory]]:
    """The cached day behind each `today` / `yesterday` window, for Rocket.Chat's own sums."""
    by_day = {d.day: d for d in inp.days}
    today = local_date(now, inp.tz)
    out = []
    for w in inp.windows:
        if w.kind == "today" and today in by_day:
            out.append((w.name, by_day[today]))
        elif w.kind == "yesterday":
            day = by_day.get(today.fromordinal(today.toordinal() - 1))
            if day is not None:
                out.append((w.name, day))
    return out


def _status_counts(live: LiveStatus, live_agents, agent_filter: AgentFilter):
    if live.agents is None:
        counts = dict(live.counts)
    else:
        counts = {"available": 0, "away": 0, "busy": 0, "offline": 0}
        for agent in live_agents.values():
            counts[agent.chart_status] = counts.get(agent.chart_status, 0) + 1
    return tuple(sorted(counts.items()))
