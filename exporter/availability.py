"""Availability math: merge intervals, clip them to windows, sweep team concurrency.

Pure functions over plain values: no I/O, no clock (`now` is always a parameter).

Edge semantics, the same in every function here:

- Time is measured, not sampled: an interval [start, end] and a window [start, end] share
  `min(ends) - max(starts)` seconds. Whether the end points themselves belong is irrelevant
  for every number except the ones below, which only count *positive-length* overlaps.
- An interval counts in a window (it makes the agent's series exist, it adds to
  `AgentWindow.intervals` and `TeamWindow.active`) only when it shares more than zero seconds
  with the window. An interval that merely touches a window edge (ends exactly where the
  window starts, or starts exactly where it ends) does not count: Rocket.Chat's midnight split
  ends yesterday's entry at 23:59:59, so it is not part of `today`.
- A zero-length interval (start == end) carries no time: it never counts in a window and never
  makes an agent available. `merge_intervals` keeps it, since it is what Rocket.Chat stored,
  unless it lies inside or touches another interval (then it is merged away).
- An empty window (end <= start, e.g. `today` at the very instant of midnight) has no data:
  `agent_window` returns None and every team value is 0.
- Concurrency at instant t counts the agents with an interval where start <= t < end, so an
  agent whose session ends exactly when another's starts does not make a momentary overlap.

Every agent's intervals passed in must be sorted by start and merged (non-overlapping), as
`merge_intervals` and `exporter.sessions.with_open_sessions` return them.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import accumulate, chain
from operator import attrgetter, lt, mul, not_, sub
from zoneinfo import ZoneInfo

from exporter.config.model import Window
from exporter.model import Interval

_START = attrgetter("start")
_END = attrgetter("end")

# ---- merging -----------------------------------------------------------------------------


def merge_intervals(intervals: Iterable[Interval]) -> tuple[tuple[Interval, ...], int]:
    """Sort and merge overlapping or duplicate intervals.

    Two intervals merge when the later one starts at or before the earlier one's end (so
    touching intervals merge too). Intervals separated by any gap stay apart: Rocket.Chat's
    midnight split ([.., 23:59:59] then [00:00:00, ..], one second apart) stays two intervals.
    Returns the merged intervals and how many input entries were merged away. Unchanged
    intervals are returned as the same objects.
    """
    ordered = sorted(intervals, key=_START)
    merged: list[Interval] = []
    for iv in ordered:
        if merged and iv.start <= merged[-1].end:
            last = merged[-1]
            if iv.end > last.end:
                merged[-1] = Interval(last.start, iv.end)
            continue
        merged.append(iv)
    return tuple(merged), len(ordered) - len(merged)


def bridge_midnight_splits(intervals: Sequence[Interval], tz: ZoneInfo) -> tuple[Interval, ...]:
    """Join the pairs Rocket.Chat's midnight job made out of one session.

    The job closes every open session at 23:59:59 server-local and reopens it at 00:00:00 of
    the next day, so a session across midnight is stored as two intervals one second apart.
    Per-agent figures keep them as stored; for team concurrency that one-second hole would
    make every midnight look unstaffed (min 0, one unstaffed second a day), so the caller can
    bridge it here. Only exactly that pattern is joined: an interval ending at local 23:59:59
    followed by one starting at the next day's local midnight. Input sorted and merged.
    """
    out: list[Interval] = []
    for iv in intervals:
        if out and _is_midnight_split(out[-1].end, iv.start, tz):
            out[-1] = Interval(out[-1].start, iv.end)
        else:
            out.append(iv)
    return tuple(out)


# 1 s is the normal gap; a DST change at midnight (e.g. America/Santiago) can add an hour.
_SPLIT_GAPS = (1.0, 3601.0)


def _is_midnight_split(end: float, start: float, tz: ZoneInfo) -> bool:
    if start - end not in _SPLIT_GAPS:  # cheap test first: most gaps are not midnight splits
        return False
    day = datetime.fromtimestamp(start, tz).date()
    if start != day_start(day, tz):
        return False
    before = datetime.fromtimestamp(end, tz)
    return before.date() == day - timedelta(days=1) and before.time().isoformat() == "23:59:59"


# ---- windows -----------------------------------------------------------------------------


def day_start(day: date, tz: ZoneInfo) -> float:
    """Unix time at which the local calendar `day` starts in `tz`.

    Where midnight does not exist (a DST change at 00:00, e.g. America/Santiago), this is the
    instant of the change, when the local clock jumps from 23:59:59 to 01:00.
    """
    return datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()


def local_midnight(t: float, tz: ZoneInfo) -> float:
    """Start of the local calendar day that contains instant `t`."""
    return day_start(datetime.fromtimestamp(t, tz).date(), tz)


def window_bounds(window: Window, now: float, tz: ZoneInfo) -> tuple[float, float]:
    """The instants [start, end] a window covers at `now`.

    duration: [now - seconds, now]; today: [local midnight, now]; yesterday: the whole previous
    local day, [its midnight, today's midnight]. Local days follow `tz` (the Rocket.Chat
    server's zone), so on DST change days `yesterday` is 23 or 25 hours long.
    """
    if window.kind == "duration":
        return (now - window.seconds, now)
    today = datetime.fromtimestamp(now, tz).date()
    midnight = day_start(today, tz)
    if window.kind == "today":
        return (midnight, now)
    if window.kind == "yesterday":
        return (day_start(today - timedelta(days=1), tz), midnight)
    raise ValueError(
        f"window {window.name!r}: unknown kind {window.kind!r} (use duration, today or yesterday)"
    )


# ---- one agent ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentWindow:
    """One agent in one window: seconds available, share of the window, intervals touched."""

    seconds: float
    ratio: float
    intervals: int


def agent_window(intervals: Sequence[Interval], start: float, end: float) -> AgentWindow | None:
    """Clip one agent's sorted, merged intervals to [start, end].

    None when no interval shares a positive length with the window: an agent without data in
    a window gets no series for it. ratio = seconds / window length, within [0, 1].
    """
    if end <= start:
        return None
    seconds = 0.0
    count = 0
    # Merged intervals do not overlap, so their ends are sorted too: skip the ones that ended
    # before the window without walking them.
    for k in range(bisect_right(intervals, start, key=_END), len(intervals)):
        iv = intervals[k]
        if iv.start >= end:
            break
        part = min(iv.end, end) - max(iv.start, start)
        if part > 0:
            seconds += part
            count += 1
    if count == 0:
        return None
    return _agent_result(seconds, count, end - start)


def agent_windows(
    intervals: Sequence[Interval], bounds: Sequence[tuple[float, float]]
) -> list[AgentWindow | None]:
    """`agent_window` for several windows at once, in the order of `bounds`.

    Faster when windows are long: one pass builds running totals, then each window costs two
    binary searches instead of a walk over every interval it contains.
    """
    if not intervals:
        return [None] * len(bounds)
    starts = list(map(_START, intervals))
    ends = list(map(_END, intervals))
    lengths = list(map(sub, ends, starts))
    done = list(accumulate(lengths, initial=0.0))  # done[k]: seconds in intervals[:k]
    real = list(accumulate(map(bool, lengths), initial=0))  # real[k]: positive-length count
    out: list[AgentWindow | None] = []
    for start, end in bounds:
        if end <= start:
            out.append(None)
            continue
        i = bisect_right(ends, start)  # first interval ending after the window starts
        j = bisect_left(starts, end, i)  # first interval starting at or after the window end
        count = real[j] - real[i]
        if count == 0:
            out.append(None)
            continue
        seconds = done[j] - done[i]
        seconds -= max(0.0, start - starts[i])  # the first interval's part before the window
        seconds -= max(0.0, ends[j - 1] - end)  # the last interval's part after it
        out.append(_agent_result(seconds, count, end - start))
    return out


def _agent_result(seconds: float, count: int, length: float) -> AgentWindow:
    # Clamp float rounding so that 0 <= seconds <= length holds exactly.
    seconds = min(max(seconds, 0.0), length)
    return AgentWindow(seconds=seconds, ratio=min(seconds / length, 1.0), intervals=count)


# ---- the team ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TeamWindow:
    """Concurrently available agents over one window.

    active: agents with at least one interval in the window. min / max / avg: agents
    available at the same instant (avg time-weighted); agents without data count as not
    available, so min is 0 whenever some instant had nobody. unstaffed_seconds: time with
    nobody available. understaffed_seconds: time with fewer agents than required then; None
    when no staffing schedule is configured.
    """

    active: int
    min: float
    max: float
    avg: float
    unstaffed_seconds: float
    understaffed_seconds: float | None


Requirement = Sequence[tuple[float, float, int]]


def team_windows(
    agents: Sequence[Sequence[Interval]],
    bounds: Sequence[tuple[float, float]],
    requirement: Requirement | None = None,
) -> list[TeamWindow]:
    """Team concurrency for every window in one sweep, in the order of `bounds`.

    `agents`: each agent's sorted, merged intervals. `requirement`: contiguous
    (start, end, required) segments from `exporter.staffing.requirement_segments`; time no
    segment covers counts as requiring 0. None means no schedule (understaffed is None).
    """
    timeline = _Timeline(agents, bounds, requirement)
    return [timeline.window(start, end, _active(agents, start, end)) for start, end in bounds]


def _active(agents: Sequence[Sequence[Interval]], start: float, end: float) -> int:
    if end <= start:
        return 0
    return sum(1 for intervals in agents if _overlaps(intervals, start, end))


def _overlaps(intervals: Sequence[Interval], start: float, end: float) -> bool:
    for k in range(bisect_right(intervals, start, key=_END), len(intervals)):
        iv = intervals[k]
        if iv.start >= end:
            return False
        if iv.end > iv.start:  # ends after `start` (bisect), starts before `end`, not a point
            return True
    return False


class _Timeline:
    """The team's concurrency as a step function, with running totals for O(1) window sums.

    Built once per poll from every agent's intervals; each window is then a pair of binary
    searches plus a min/max over its slice. Window edges and requirement changes are inserted
    as breakpoints, so a window always starts and ends exactly on a breakpoint.

    Segment k spans [times[k], times[k + 1]) with `level[k]` agents available. The running
    totals have one more entry than there are segments: total[k] sums segments 0..k-1.
    Large inputs (millions of intervals) stay in compact arrays, and every per-element step
    below runs inside C (map/accumulate/array), not in a Python loop.
    """

    def __init__(
        self,
        agents: Sequence[Sequence[Interval]],
        bounds: Sequence[tuple[float, float]],
        requirement: Requirement | None,
    ):
        flat = list(chain.from_iterable(agents))
        delta = dict.fromkeys(chain.from_iterable(bounds), 0)
        for s, e, _ in requirement or ():
            delta[s] = delta[e] = 0
        # +1 where a session starts, -1 where it ends; a zero-length one nets to 0.
        get = delta.get
        for t in map(_START, flat):
            delta[t] = get(t, 0) + 1
        for t in map(_END, flat):
            delta[t] = get(t, 0) - 1
        del flat
        self.times = times = sorted(delta)
        self.level = level = array("q", accumulate(map(delta.__getitem__, times)))
        del delta
        widths = array("d", map(sub, times[1:], times[:-1]))
        self.area = _running(map(mul, widths, level))
        self.nobody = _running(map(mul, widths, map(not_, level)))
        self.short: array[float] | None = None
        if requirement is not None:
            self.short = _running(map(mul, widths, map(lt, level, _levels(times, requirement))))

    def window(self, start: float, end: float, active: int) -> TeamWindow:
        if end <= start:
            return TeamWindow(active, 0.0, 0.0, 0.0, 0.0, None if self.short is None else 0.0)
        a = bisect_left(self.times, start)
        b = bisect_left(self.times, end)
        length = end - start
        levels = self.level[a:b]
        low, high = float(min(levels)), float(max(levels))
        # Clamp float rounding so the documented invariants hold exactly.
        avg = min(max((self.area[b] - self.area[a]) / length, low), high)
        nobody = min(max(self.nobody[b] - self.nobody[a], 0.0), length)
        short = None
        if self.short is not None:
            short = min(max(self.short[b] - self.short[a], 0.0), length)
        return TeamWindow(active, low, high, avg, nobody, short)


def _running(values: Iterable[float]) -> array[float]:
    return array("d", accumulate(values, initial=0.0))


def _levels(times: list[float], requirement: Requirement) -> array[int]:
    """Required agents on each timeline segment (0 where no requirement segment applies)."""
    required = array("q", bytes(8 * len(times)))
    for s, e, n in requirement:
        i, j = bisect_left(times, s), bisect_left(times, e)
        required[i:j] = array("q", [n]) * (j - i)
    return required
