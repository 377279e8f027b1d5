"""One server's complete picture after a successful poll, as plain frozen values.

Built once per poll from the history cache, the live status and the open-session streaks
(exporter.parts computes the figures; exporter.pastdays keeps the past days' share between
polls); the exposition renders it, scrapes never touch it again. A snapshot is either
complete or not built at all: the poller keeps the previous one when anything failed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from operator import attrgetter
from zoneinfo import ZoneInfo

from exporter.availability import (
    AgentWindow,
    TeamWindow,
    window_bounds,
)
from exporter.config.model import AgentFilter, Staffing, Window
from exporter.departments import DepartmentInputs, DepartmentsSnapshot, department_figures
from exporter.localtime import local_date
from exporter.model import DayHistory, LiveStatus, ParseStats
from exporter.parts import Parts, whole_parts
from exporter.pastdays import PastDays
from exporter.servicelevel import ServiceLevelSnapshot
from exporter.sessions import Streak
from exporter.staffing import required_at

_START = attrgetter("start")
_END = attrgetter("end")
_AGENT = attrgetter("agent")


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
    agents: tuple[AgentRow, ...]  # sorted by label; empty when per_agent is off
    team: tuple[tuple[str, TeamWindow], ...]  # (window name, stats)
    status_counts: tuple[tuple[str, int], ...]  # (status, count)
    required_agents: int | None  # None without a staffing schedule
    missing_agents: int  # today's: counted by Rocket.Chat, not returned (agents_truncated)
    anomalies: ParseStats
    # Per configured window: (name, complete, agents missing). A window is complete when every
    # day it touches is cached (an incomplete one has no other series while the cache fills);
    # agents missing is the largest count Rocket.Chat reported but did not return on any of
    # its days (pagination rejected).
    window_status: tuple[tuple[str, bool, int], ...] = ()
    departments: DepartmentsSnapshot | None = None  # None: departments off
    service_level: ServiceLevelSnapshot | None = None  # None: service_level off


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
    missing_days: frozenset[date] = frozenset()  # wanted but not fetched yet (a filling cache)
    departments: DepartmentInputs | None = None  # None: departments off


def window_days(window: Window, now: float, tz: ZoneInfo) -> list[date]:
    """The server-local days a window touches at `now`."""
    start, end = window_bounds(window, now, tz)
    first, last = local_date(start, tz), local_date(end, tz)
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _window_status(inp: SnapshotInputs, now: float) -> tuple[tuple[str, bool, int], ...]:
    missing = {d.day: d.missing_agents for d in inp.days}
    out = []
    for w in inp.windows:
        days = window_days(w, now, inp.tz)
        complete = not inp.missing_days.intersection(days)
        out.append((w.name, complete, max((missing.get(d, 0) for d in days), default=0)))
    return tuple(out)


def build_snapshot(inp: SnapshotInputs, now: float, past: PastDays | None = None) -> ServerSnapshot:
    """The snapshot at `now`. `past` (optional) keeps what the past days give from one poll
    to the next; the result is the same with or without it.

    Windows that touch a missing day (`inp.missing_days`) are left out entirely: a partial
    figure must not pass for a complete one. `window_status` says which they are.
    """
    status = _window_status(inp, now)
    if inp.missing_days:
        complete = {name for name, ok, _ in status if ok}
        inp = replace(inp, windows=tuple(w for w in inp.windows if w.name in complete))
        past = None  # a partial picture is built once, from scratch
    wants = inp.agent_filter.wants
    live_agents = {a.username: a for a in inp.live.agents or () if wants(a.username)}
    bounds = [window_bounds(w, now, inp.tz) for w in inp.windows]
    parts = past.parts(inp, bounds, now) if past is not None else None
    if parts is None:
        parts = whole_parts(inp, bounds, now)

    rows: tuple[AgentRow, ...] = ()
    if inp.agent_filter.per_agent:
        rows = _agent_rows(inp, parts, live_agents, now)

    return ServerSnapshot(
        server=inp.server,
        taken_at=now,
        agents=rows,
        team=tuple((w.name, t) for w, t in zip(inp.windows, parts.team, strict=True)),
        status_counts=_status_counts(inp.live, live_agents, inp.agent_filter),
        required_agents=required_at(inp.staffing, now) if inp.staffing is not None else None,
        missing_agents=inp.days[-1].missing_agents if inp.days else 0,
        anomalies=sum((d.stats for d in inp.days), ParseStats()),
        window_status=status,
        departments=department_figures(inp, bounds, now),
    )


def _agent_rows(inp, parts: Parts, live_agents, now) -> tuple[AgentRow, ...]:
    reported_days = _reported_days(inp, now)
    rows = []
    window_names = [w.name for w in inp.windows]
    usernames = sorted(parts.agents | live_agents.keys())
    labels = inp.agent_filter.labels(
        usernames, {u: a.name for u, a in live_agents.items() if a.name}
    )
    for name in usernames:
        figures = zip(window_names, parts.windows(name), strict=True)
        stats = [(w, aw) for w, aw in figures if aw is not None]
        reported = tuple(
            (wname, seconds)
            for wname, day in reported_days
            if name in day.agents and (seconds := day.agents[name].reported_seconds) is not None
        )
        live = live_agents.get(name)
        open_iv = parts.opened.get(name)
        rows.append(
            AgentRow(
                agent=labels[name],
                windows=tuple(stats),
                reported=reported,
                last_available=parts.last_closed.get(name),
                available=live.available if live is not None else None,
                open_session_seconds=(
                    (open_iv.end - open_iv.start if open_iv else 0.0) if live is not None else None
                ),
            )
        )
    # By label, so that the order of pseudonyms does not give away the order of usernames.
    return tuple(sorted(rows, key=_AGENT))


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
