"""Per-department team figures from a past part kept between polls and a recent part.

The same split as snapshot.PastDays makes for the whole team: only today changes from one
poll to the next, so each department's concurrency over the past days up to `split` (two
hours before today's midnight) is built once, when the past days' objects, the department's
members or its schedule change, and each poll adds the part from `split` to now. Spans of the
two join by `Span` addition, active agents by each member's `reach` (the latest instant before
`split` it was available). `team` returns None where the split does not apply (no past day, a
window reaching before the past days or ending before `split`, a recent interval starting
before `split`): the caller then computes the department from all days at once. Pure: no
clock, no I/O; one per server, owned by the poller; not thread-safe.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from zoneinfo import ZoneInfo

from exporter.availability import (
    Concurrency,
    TeamWindow,
    bridge_midnight_splits,
    empty_span,
    overlaps,
    team_window,
)
from exporter.config.model import AgentFilter, Staffing
from exporter.localtime import day_start, local_date
from exporter.model import DayHistory, Interval
from exporter.sessions import Streak, open_session, with_open_sessions
from exporter.staffing import requirement_segments

SPLIT_BEFORE_MIDNIGHT = 7200.0  # as snapshot.SPLIT_BEFORE_MIDNIGHT, for the same reasons
_START = attrgetter("start")
_END = attrgetter("end")
Bounds = Sequence[tuple[float, float]]


@dataclass(frozen=True, slots=True)
class Recent:
    """This poll's part of every agent: intervals after `split` (bridged), or None when the
    split does not apply this poll."""

    split: float
    intervals: dict[str, tuple[Interval, ...]]


class DepartmentPast:
    def __init__(self) -> None:
        self._key: tuple | None = None
        self._days: tuple[DayHistory, ...] = ()  # keeps the objects (and their ids) alive
        self._past: dict[str, tuple[Interval, ...]] = {}  # every agent's past intervals
        self._blocks: dict[tuple, _Block] = {}
        self.builds = 0  # department blocks built so far (tests, benchmarks)

    def recent(
        self,
        days: Sequence[DayHistory],
        tz: ZoneInfo,
        agent_filter: AgentFilter,
        streaks: Mapping[str, Streak],
        include_open: bool,
        names: set[str],
        now: float,
    ) -> Recent | None:
        """Each of `names`' intervals after the split, or None (no past day, odd intervals)."""
        today = local_date(now, tz)
        past = tuple(d for d in days if d.day < today)
        if not past:
            return None
        split = day_start(today, tz) - SPLIT_BEFORE_MIDNIGHT
        key = (tuple(map(id, past)), split, tz, agent_filter)
        if key != self._key:
            self._key, self._days, self._blocks = key, past, {}
            closed: dict[str, list[Interval]] = {}
            for day in past:
                for name, agent_day in day.agents.items():
                    if agent_filter.wants(name):
                        closed.setdefault(name, []).extend(agent_day.intervals)
            self._past = {name: tuple(ivs) for name, ivs in closed.items()}
        midnight = day_start(today, tz)
        out: dict[str, tuple[Interval, ...]] = {}
        for name in names:
            head = self._past.get(name, ())
            tail = head[bisect_right(head, split, key=_END) :]
            today_ivs: list[Interval] = []
            for day in days:
                if day.day >= today and name in day.agents:
                    today_ivs.extend(day.agents[name].intervals)
            if today_ivs and today_ivs[0].start < split:
                return None
            closed_ivs = [*tail, *today_ivs]
            last = closed_ivs[-1].end if closed_ivs else (head[-1].end if head else None)
            opened = None
            streak = streaks.get(name)
            if include_open and streak is not None:
                opened = open_session(streak, last, midnight, now)
            ivs = with_open_sessions(closed_ivs, opened)
            if ivs:
                out[name] = bridge_midnight_splits(ivs, tz)
        return Recent(split, out)

    def team(
        self,
        recent: Recent,
        members: Sequence[str],
        schedule: Staffing | None,
        tz: ZoneInfo,
        bounds: Bounds,
    ) -> list[TeamWindow] | None:
        """The department's TeamWindow per window, or None where the split does not apply."""
        key = (tuple(sorted(members)), schedule)
        block = self._blocks.get(key)
        if block is None:
            block = _Block(self._days, self._past, key[0], schedule, tz, recent.split)
            self._blocks[key] = block
            self.builds += 1
        split = recent.split
        if any(end > start and (start < block.start or end < split) for start, end in bounds):
            return None
        mine = {n: recent.intervals[n] for n in key[0] if n in recent.intervals}
        end = max([split, *(b for _, b in bounds)])
        req = requirement_segments(schedule, split, end) if schedule is not None else None
        timeline = Concurrency(mine.values(), split, end, req)
        out = []
        for start, stop in bounds:
            span = None
            if not empty_span(start, stop):
                if start < split:
                    span = block.team.span(start, split)
                later = timeline.span(max(start, split), stop)
                if later is not None:
                    span = later if span is None else span + later
            out.append(team_window(block.active(mine, start, stop), span, schedule is not None))
        return out


class _Block:
    """One department's past part: concurrency up to `split`, and each member's reach."""

    def __init__(
        self,
        days: Sequence[DayHistory],
        past: Mapping[str, tuple[Interval, ...]],
        members: Sequence[str],
        schedule: Staffing | None,
        tz: ZoneInfo,
        split: float,
    ):
        self.split = split
        bridged = {n: bridge_midnight_splits(past[n], tz) for n in members if past.get(n)}
        starts = [ivs[0].start for ivs in bridged.values() if ivs]
        self.start = min([day_start(days[0].day, tz), *starts])
        req = requirement_segments(schedule, self.start, split) if schedule is not None else None
        self.team = Concurrency(bridged.values(), self.start, split, req, reused=True)
        self.reach = {n: _reach(ivs, split) for n, ivs in bridged.items()}
        self._reaches = sorted(self.reach.values())

    def active(self, recent: Mapping[str, tuple[Interval, ...]], start: float, stop: float) -> int:
        if stop <= start:
            return 0
        split = self.split
        before = len(self._reaches) - bisect_right(self._reaches, start) if start < split else 0
        lo = max(start, split)
        after = sum(
            1
            for name, ivs in recent.items()
            if not (start < split and self.reach.get(name, -math.inf) > start)
            and overlaps(ivs, lo, stop)
        )
        return before + after


def _reach(intervals: Sequence[Interval], split: float) -> float:
    for k in range(bisect_left(intervals, split, key=_START) - 1, -1, -1):
        iv = intervals[k]
        if iv.end > iv.start:
            return min(iv.end, split)
    return -math.inf
