"""One server's complete picture after a successful poll, as plain frozen values.

Built once per poll from the history cache, the live status and the open-session streaks;
the exposition renders it, scrapes never touch it again. A snapshot is either complete or
not built at all: the poller keeps the previous one when anything failed.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, replace
from datetime import date, timedelta
from operator import attrgetter
from zoneinfo import ZoneInfo

from exporter.availability import (
    AgentWindow,
    Concurrency,
    Tally,
    TeamWindow,
    agent_result,
    agent_window,
    bridge_midnight_splits,
    clip,
    empty_span,
    overlaps,
    team_window,
    team_windows,
    window_bounds,
)
from exporter.config.model import AgentFilter, Staffing, Window
from exporter.localtime import day_start, local_date
from exporter.model import DayHistory, Interval, LiveStatus, ParseStats
from exporter.sessions import Streak, open_session, with_open_sessions
from exporter.staffing import required_at, requirement_segments

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
    truncated: int
    anomalies: ParseStats
    # Per configured window: (name, complete, agents missing). A window is complete when every
    # day it touches is cached (an incomplete one has no other series while the cache fills);
    # agents missing is the largest count Rocket.Chat reported but did not return on any of
    # its days (pagination rejected).
    window_status: tuple[tuple[str, bool, int], ...] = ()


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


def window_days(window: Window, now: float, tz: ZoneInfo) -> list[date]:
    """The server-local days a window touches at `now`."""
    start, end = window_bounds(window, now, tz)
    first, last = local_date(start, tz), local_date(end, tz)
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _window_status(inp: SnapshotInputs, now: float) -> tuple[tuple[str, bool, int], ...]:
    truncated = {d.day: d.truncated for d in inp.days}
    out = []
    for w in inp.windows:
        days = window_days(w, now, inp.tz)
        complete = not inp.missing_days.intersection(days)
        out.append((w.name, complete, max((truncated.get(d, 0) for d in days), default=0)))
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
        parts = _whole_parts(inp, bounds, now)

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
        truncated=inp.days[-1].truncated if inp.days else 0,
        anomalies=sum((d.stats for d in inp.days), ParseStats()),
        window_status=status,
    )


@dataclass(frozen=True, slots=True)
class _Parts:
    """Per-agent figures and team figures, however they were computed."""

    agents: Set[str]  # agents with history or an open session
    last_closed: dict[str, float]  # end of each agent's latest closed interval
    opened: dict[str, Interval]  # open sessions
    windows: Callable[[str], list[AgentWindow | None]]  # an agent's figures, window order
    team: list[TeamWindow]  # in window order


def _open_sessions(
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


def _requirement(inp: SnapshotInputs, start: float, end: float) -> list | None:
    if inp.staffing is None:
        return None
    return requirement_segments(inp.staffing, start, end)


def _whole_parts(inp: SnapshotInputs, bounds: Sequence[tuple[float, float]], now: float):
    """Everything from all cached days at once."""
    closed = closed_intervals(inp.days, inp.agent_filter.wants)
    last_closed = {name: ivs[-1].end for name, ivs in closed.items() if ivs}
    opened = _open_sessions(inp, last_closed, now)
    merged = {
        name: with_open_sessions(closed.get(name, ()), opened.get(name))
        for name in closed.keys() | opened.keys()
    }
    requirement = None
    if bounds:
        requirement = _requirement(inp, min(b[0] for b in bounds), max(b[1] for b in bounds))
    # Per-agent figures keep Rocket.Chat's midnight split as stored; for team concurrency the
    # one-second hole it leaves would make every midnight look unstaffed, so bridge it.
    team_intervals = [bridge_midnight_splits(ivs, inp.tz) for ivs in merged.values()]
    team = team_windows(team_intervals, bounds, requirement)

    def windows(name: str) -> list[AgentWindow | None]:
        intervals = merged.get(name, ())
        return [agent_window(intervals, start, end) for start, end in bounds]

    return _Parts(merged.keys(), last_closed, opened, windows, team)


# Past and recent meet this long before today's midnight: late enough that the recent part
# stays small, early enough that the midnight split (23:59:59 -> 00:00:00, or one hour more
# where DST changes at midnight) always falls in the recent part, where it is bridged.
SPLIT_BEFORE_MIDNIGHT = 7200.0


class PastDays:
    """What the snapshot takes from the past days, kept from one poll to the next.

    Only today changes between polls: a past day's history is the same object for as long as
    the cache keeps it. So each agent's intervals over the past days and the team's
    concurrency up to shortly before today's midnight (`split`) are built once, and again
    only when the past days' objects change (at midnight, and when yesterday is fetched a
    last time, final). Each poll then builds just the recent part, [split, now], and joins
    the two: per agent by concatenation, for the team by `Span` addition (concurrency up to
    `split` is the past part's, from `split` on the recent part's).

    The figures are `_whole_parts`'s (per-agent seconds are summed in another order, so in
    principle they can differ in the last bit); `parts` returns None (use that instead)
    where the split does not apply: no past day, a window that starts before the
    past days or ends before `split`, or a recent interval starting before `split`.

    One per server (the poller owns it); not thread-safe.
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._block: _PastBlock | None = None
        self.builds = 0  # how many times the past part was (re)built
        self.intervals = 0  # intervals in the current past part

    def parts(
        self, inp: SnapshotInputs, bounds: Sequence[tuple[float, float]], now: float
    ) -> _Parts | None:
        today = local_date(now, inp.tz)
        past = [d for d in inp.days if d.day < today]
        if not past:
            return None
        split = day_start(today, inp.tz) - SPLIT_BEFORE_MIDNIGHT
        block = self._past_block(inp, past, split)
        if any(end > start and (start < block.start or end < split) for start, end in bounds):
            return None
        return block.parts_with(inp, [d for d in inp.days if d.day >= today], bounds, now)

    def _past_block(
        self, inp: SnapshotInputs, past: Sequence[DayHistory], split: float
    ) -> _PastBlock:
        key = (tuple(map(id, past)), split, inp.tz, inp.agent_filter, inp.staffing)
        if self._block is None or key != self._key:
            self._block = None  # let the old block go first: one in memory at a time
            self._block = _PastBlock(inp, past, split)
            self._key = key
            self.builds += 1
            self.intervals = sum(len(h.intervals) for h in self._block.heads.values())
        return self._block


class _PastBlock:
    """The past days' part, built once (see PastDays)."""

    def __init__(self, inp: SnapshotInputs, days: Sequence[DayHistory], split: float):
        self.days = tuple(days)  # keeps the objects alive, so their ids in the key stay theirs
        self.split = split
        closed = closed_intervals(days, inp.agent_filter.wants)
        # heads end at or before `split`; tails (mostly none) end after it and join the recent
        # part, where the open session and tonight's midnight split may need them.
        self.heads: dict[str, Tally] = {}
        self.tails: dict[str, tuple[Interval, ...]] = {}
        for name, ivs in closed.items():
            k = bisect_right(ivs, split, key=_END)
            self.heads[name] = Tally(ivs[:k])
            if k < len(ivs):
                self.tails[name] = tuple(ivs[k:])
        self.last_closed = {name: ivs[-1].end for name, ivs in closed.items() if ivs}
        bridged = {name: bridge_midnight_splits(ivs, inp.tz) for name, ivs in closed.items()}
        del closed
        starts = [ivs[0].start for ivs in bridged.values() if ivs]
        self.start = min([day_start(days[0].day, inp.tz), *starts])
        self.team = Concurrency(
            bridged.values(), self.start, split, _requirement(inp, self.start, split), reused=True
        )
        # reach: the latest instant before `split` the agent was available (positive-length
        # intervals only): the agent is active in [t, split) exactly when reach > t.
        self.reach = {name: _reach(ivs, split) for name, ivs in bridged.items()}
        self._reaches = sorted(self.reach.values())

    def active_before_split(self, t: float) -> int:
        """Agents with time in [t, split)."""
        return len(self._reaches) - bisect_right(self._reaches, t)

    def parts_with(
        self,
        inp: SnapshotInputs,
        recent_days: Sequence[DayHistory],
        bounds: Sequence[tuple[float, float]],
        now: float,
    ) -> _Parts | None:
        split = self.split
        recent_closed = closed_intervals(recent_days, inp.agent_filter.wants)
        if any(ivs and ivs[0].start < split for ivs in recent_closed.values()):
            return None
        last_closed = dict(self.last_closed)
        last_closed.update((name, ivs[-1].end) for name, ivs in recent_closed.items() if ivs)
        opened = _open_sessions(inp, last_closed, now)
        names = self.heads.keys() | recent_closed.keys() | opened.keys()
        merged: dict[str, tuple[Interval, ...]] = {}  # after the heads: tail, today, open
        recent: dict[str, tuple[Interval, ...]] = {}  # the same, bridged, for the team
        no_intervals: tuple[Interval, ...] = ()
        for name in names:
            tail = self.tails.get(name, no_intervals)
            closed = recent_closed.get(name)
            ivs = with_open_sessions(tail + tuple(closed) if closed else tail, opened.get(name))
            if ivs:
                merged[name] = ivs
                recent[name] = bridge_midnight_splits(ivs, inp.tz)
        team = self._team(inp, recent, bounds)
        heads = self.heads

        def windows(name: str) -> list[AgentWindow | None]:
            """Past part from the head's running totals, the rest clipped as usual."""
            ivs = merged.get(name, no_intervals)
            head = heads.get(name)
            head_end = head.intervals[-1].end if head is not None and head.intervals else -math.inf
            out: list[AgentWindow | None] = []
            for start, end in bounds:
                if end <= start:
                    out.append(None)
                    continue
                seconds, count = clip(ivs, start, end) if ivs else (0.0, 0)
                if start < head_end:
                    more, n = head.clip(start, end)  # type: ignore[union-attr]
                    seconds, count = more + seconds, n + count
                out.append(agent_result(seconds, count, end - start))
            return out

        return _Parts(names, last_closed, opened, windows, team)

    def _team(
        self,
        inp: SnapshotInputs,
        recent: dict[str, tuple[Interval, ...]],
        bounds: Sequence[tuple[float, float]],
    ) -> list[TeamWindow]:
        split = self.split
        end = max([split, *(b for _, b in bounds)])
        timeline = Concurrency(recent.values(), split, end, _requirement(inp, split, end))
        schedule = inp.staffing is not None
        out = []
        for start, stop in bounds:
            span = None
            if not empty_span(start, stop):  # the same test as Concurrency.span
                if start < split:
                    span = self.team.span(start, split)
                later = timeline.span(max(start, split), stop)
                if later is not None:
                    span = later if span is None else span + later
            out.append(team_window(self._active(recent, start, stop), span, schedule))
        return out

    def _active(self, recent: dict[str, tuple[Interval, ...]], start: float, stop: float) -> int:
        """Agents with time in [start, stop]: active before `split`, or else after it."""
        if stop <= start:
            return 0
        split, reach = self.split, self.reach
        before = self.active_before_split(start) if start < split else 0
        lo = max(start, split)
        after = sum(
            1
            for name, ivs in recent.items()
            if not (start < split and reach.get(name, -math.inf) > start)
            and overlaps(ivs, lo, stop)
        )
        return before + after


def _reach(intervals: Sequence[Interval], split: float) -> float:
    """The latest instant before `split` covered by a positive-length interval (or -inf)."""
    for k in range(bisect_left(intervals, split, key=_START) - 1, -1, -1):
        iv = intervals[k]
        if iv.end > iv.start:
            return min(iv.end, split)
    return -math.inf


def _agent_rows(inp, parts: _Parts, live_agents, now) -> tuple[AgentRow, ...]:
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
