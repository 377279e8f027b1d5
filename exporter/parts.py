"""What a snapshot is computed from: each agent's intervals, open sessions, team timeline.

`whole_parts` computes them from every cached day at once; exporter.pastdays keeps the past
days' share between polls and joins today's to it. Pure: `now` is a parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING

from exporter.availability import (
    AgentWindow,
    TeamWindow,
    agent_window,
    bridge_midnight_splits,
    team_windows,
)
from exporter.localtime import day_start, local_date
from exporter.model import DayHistory, Interval
from exporter.sessions import open_session, with_open_sessions
from exporter.staffing import requirement_segments

_START = attrgetter("start")
_END = attrgetter("end")

if TYPE_CHECKING:
    from exporter.snapshot import SnapshotInputs


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


@dataclass(frozen=True, slots=True)
class Parts:
    """Per-agent figures and team figures, however they were computed."""

    agents: Set[str]  # agents with history or an open session
    last_closed: dict[str, float]  # end of each agent's latest closed interval
    opened: dict[str, Interval]  # open sessions
    windows: Callable[[str], list[AgentWindow | None]]  # an agent's figures, window order
    team: list[TeamWindow]  # in window order


def open_sessions(
    inp: SnapshotInputs, last_closed: Mapping[str, float], now: float
) -> dict[str, Interval]:
    opened: dict[str, Interval] = {}
    if not inp.include_open_sessions:
        return opened
    wants = inp.agent_filter.wants
    midnight = day_start(local_date(now, inp.tz), inp.tz)
    for name, streak in inp.streaks.items():
        if wants(name):
            interval = open_session(streak, last_closed.get(name), midnight, now)
            if interval is not None:
                opened[name] = interval
    return opened


def requirement_between(inp: SnapshotInputs, start: float, end: float) -> list | None:
    if inp.staffing is None:
        return None
    return requirement_segments(inp.staffing, start, end)


def whole_parts(inp: SnapshotInputs, bounds: Sequence[tuple[float, float]], now: float):
    """Everything from all cached days at once."""
    closed = closed_intervals(inp.days, inp.agent_filter.wants)
    last_closed = {name: ivs[-1].end for name, ivs in closed.items() if ivs}
    opened = open_sessions(inp, last_closed, now)
    merged = {
        name: with_open_sessions(closed.get(name, ()), opened.get(name))
        for name in closed.keys() | opened.keys()
    }
    requirement = None
    if bounds:
        first, last = min(b[0] for b in bounds), max(b[1] for b in bounds)
        requirement = requirement_between(inp, first, last)
    # Per-agent figures keep Rocket.Chat's midnight split as stored; for team concurrency the
    # one-second hole it leaves would make every midnight look unstaffed, so bridge it.
    team_intervals = [bridge_midnight_splits(ivs, inp.tz) for ivs in merged.values()]
    team = team_windows(team_intervals, bounds, requirement)

    def windows(name: str) -> list[AgentWindow | None]:
        intervals = merged.get(name, ())
        return [agent_window(intervals, start, end) for start, end in bounds]

    return Parts(merged.keys(), last_closed, opened, windows, team)
