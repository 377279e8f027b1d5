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
  The team sweep works on whole milliseconds (Rocket.Chat's own resolution).

Every agent's intervals passed in must be sorted by start and merged (non-overlapping), as
`merge_intervals` and `exporter.sessions.with_open_sessions` return them.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from itertools import accumulate, chain, compress, count, repeat
from operator import add, attrgetter, lt, mod, mul, ne, not_, sub, truth
from zoneinfo import ZoneInfo

from exporter.config.model import Window
from exporter.localtime import day_start
from exporter.model import Interval

_START = attrgetter("start")
_END = attrgetter("end")

# ---- merging -----------------------------------------------------------------------------


def bridge_midnight_splits(intervals: Sequence[Interval], tz: ZoneInfo) -> tuple[Interval, ...]:
    """Join the pairs Rocket.Chat's midnight job made out of one session.

    The job closes every open session at 23:59:59 server-local and reopens it at 00:00:00 of
    the next day, so a session across midnight is stored as two intervals one second apart.
    Per-agent figures keep them as stored; for team concurrency that one-second hole would
    make every midnight look unstaffed (min 0, one unstaffed second a day), so the caller can
    bridge it here. Only exactly that pattern is joined: an interval ending at local 23:59:59
    followed by one starting at the next day's local midnight. Input sorted and merged.
    """
    starts = list(map(_START, intervals))
    ends = list(map(_END, intervals))
    # Cheap C-level filter first: only gaps of the midnight job's length can be splits.
    gaps = map(sub, starts[1:], ends)
    candidates = compress(count(1), map(_SPLIT_GAPS.__contains__, gaps))
    joins = [k for k in candidates if ends[k - 1] in _split_ends(starts[k], tz)]
    if not joins:
        return tuple(intervals)
    out: list[Interval] = []
    begin = 0
    for k in joins:  # intervals[k] continues intervals[k - 1], which is now out[-1]
        out.extend(intervals[begin:k])
        out[-1] = Interval(out[-1].start, ends[k])
        begin = k + 1
    out.extend(intervals[begin:])
    return tuple(out)


# 1 s is the normal gap; a DST change at midnight (e.g. America/Santiago) can add an hour.
_SPLIT_GAPS = frozenset({1.0, 3601.0})


@lru_cache(maxsize=256)
def _split_ends(start: float, tz: ZoneInfo) -> frozenset[float]:
    """Where the midnight job ended the first half of a session it reopened at `start`.

    Empty unless `start` is a local midnight. Cached: every agent's split shares the instant.
    """
    day = datetime.fromtimestamp(start, tz).date()
    if start != day_start(day, tz):
        return frozenset()
    before = day - timedelta(days=1)
    # 23:59:59 can happen twice when the clock falls back at midnight: accept either.
    return frozenset(
        datetime(
            before.year, before.month, before.day, 23, 59, 59, fold=fold, tzinfo=tz
        ).timestamp()
        for fold in (0, 1)
    )


# ---- windows -----------------------------------------------------------------------------


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
    seconds, count = clip(intervals, start, end)
    return agent_result(seconds, count, end - start)


def clip(intervals: Sequence[Interval], start: float, end: float) -> tuple[float, int]:
    """Seconds of [start, end] (end > start) that sorted, merged intervals cover, and how
    many positive-length intervals share time with it (zero-length ones carry no time and do
    not count). Two binary searches find the intervals inside; the sums over them run in C.
    """
    i = bisect_right(intervals, start, key=_END)  # first interval ending after the start
    j = bisect_left(intervals, end, i, key=_START)  # first one starting at or after the end
    if i == j:
        return 0.0, 0
    inner, count = inner_sum(intervals, i, j)
    return corrected(inner, intervals[i].start, intervals[j - 1].end, start, end), count


def inner_sum(intervals: Sequence[Interval], i: int, j: int) -> tuple[float, int]:
    """Whole lengths of intervals[i:j] (i < j) summed in order, and the positive ones' count:
    the part of `clip` that stays the same while the window's edges stay between the same
    interval boundaries (exporter.pastdays keeps it from poll to poll)."""
    if j - i <= _FEW:  # short windows: a plain loop beats setting up the C-level sums
        seconds, count = 0.0, 0
        for k in range(i, j):
            iv = intervals[k]
            seconds += iv.end - iv.start
            count += iv.start < iv.end
        return seconds, count
    # Merged intervals do not overlap, so their ends are sorted as well as their starts.
    inside = intervals[i:j]
    starts = list(map(_START, inside))
    ends = list(map(_END, inside))
    return sum(map(sub, ends, starts)), sum(map(lt, starts, ends))


def corrected(inner: float, first: float, last: float, start: float, end: float) -> float:
    """`inner` without the first interval's part before the window and the last one's after
    it: the same operations in the same order wherever a clip is finished."""
    seconds = inner - max(0.0, start - first)
    return seconds - max(0.0, last - end)


_FEW = 8


def agent_result(seconds: float, count: int, length: float) -> AgentWindow | None:
    """The AgentWindow for `clip`'s figures in a window `length` seconds long (> 0)."""
    if count == 0:
        return None
    seconds = min(max(seconds, 0.0), length)  # float rounding must not leave [0, length]
    return AgentWindow(seconds=seconds, ratio=min(seconds / length, 1.0), intervals=count)


class Tally:
    """Sorted, merged intervals with running totals, for intervals clipped to window after
    window (past days, poll after poll): each `clip` costs two binary searches, not a walk
    over every interval inside. The same figures as `clip`, to float rounding."""

    __slots__ = ("intervals", "_ends", "_done", "_real")

    def __init__(self, intervals: Sequence[Interval]):
        self.intervals = tuple(intervals)
        starts = array("d", map(_START, self.intervals))
        self._ends = array("d", map(_END, self.intervals))
        lengths = array("d", map(sub, self._ends, starts))
        self._done = _running(lengths)  # _done[k]: seconds in intervals[:k]
        self._real = array("q", accumulate(map(truth, lengths), initial=0))  # positive ones

    def clip(self, start: float, end: float) -> tuple[float, int]:
        """Like `clip(self.intervals, start, end)`."""
        ivs = self.intervals
        i = bisect_right(self._ends, start)
        j = bisect_left(ivs, end, i, key=_START)
        if i == j:
            return 0.0, 0
        inner, count = self.inner_sum(i, j)
        return corrected(inner, ivs[i].start, ivs[j - 1].end, start, end), count

    def bisect(self, start: float, end: float) -> tuple[int, int]:
        """(i, j): intervals[i:j] are the ones sharing time with [start, end], as in `clip`."""
        i = bisect_right(self._ends, start)
        return i, bisect_left(self.intervals, end, i, key=_START)

    def inner_sum(self, i: int, j: int) -> tuple[float, int]:
        """Like `inner_sum(self.intervals, i, j)`, from the running totals."""
        return self._done[j] - self._done[i], self._real[j] - self._real[i]


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
    """Team concurrency for every window, from one sweep, in the order of `bounds`.

    `agents`: each agent's sorted, merged intervals. `requirement`: contiguous
    (start, end, required) segments from `exporter.staffing.requirement_segments`; time no
    segment covers requires 0. None means no schedule (understaffed is None).

    The sweep runs on whole milliseconds, Rocket.Chat's own resolution: instants are rounded
    to the nearest millisecond, which makes every sum exact, so 0 <= min <= avg <= max,
    unstaffed <= window length and (where at least one agent is required) understaffed >=
    unstaffed hold exactly.
    """
    if not bounds:
        return []
    first = min(start for start, _ in bounds)
    last = max(end for _, end in bounds)
    timeline = Concurrency(agents, first, max(first, last), requirement)
    schedule = requirement is not None
    return [
        team_window(_active(agents, start, end), timeline.span(start, end), schedule)
        for start, end in bounds
    ]


def _active(agents: Iterable[Sequence[Interval]], start: float, end: float) -> int:
    if end <= start:
        return 0
    return sum(1 for intervals in agents if overlaps(intervals, start, end))


def overlaps(intervals: Sequence[Interval], start: float, end: float) -> bool:
    """Whether some interval shares a positive length with [start, end]."""
    for k in range(bisect_right(intervals, start, key=_END), len(intervals)):
        iv = intervals[k]
        if iv.start >= end:
            return False
        if iv.end > iv.start:  # ends after `start` (bisect), starts before `end`, not a point
            return True
    return False


@dataclass(frozen=True, slots=True)
class Span:
    """Team concurrency over one stretch of time, in timeline units (see `_UNITS`).

    Spans of adjacent stretches join (`+`) into the span of both: the extremes of the two,
    the sums of the rest. That is what lets a window be computed from a part that is kept
    across polls (past days) and a part rebuilt every poll (today).
    """

    length: float
    low: float  # fewest agents available at one instant
    high: float  # most agents available at one instant
    area: float  # agents x time
    nobody: float  # time with no agent available
    short: float | None  # time with fewer agents than required; None without a schedule

    def __add__(self, other: Span) -> Span:
        short = None if self.short is None or other.short is None else self.short + other.short
        return Span(
            self.length + other.length,
            min(self.low, other.low),
            max(self.high, other.high),
            self.area + other.area,
            self.nobody + other.nobody,
            short,
        )


def team_window(active: int, span: Span | None, schedule: bool) -> TeamWindow:
    """A window's TeamWindow from its span (None: an empty window, every value 0).

    `schedule`: whether a staffing schedule applies (understaffed is a number, else None).
    """
    if span is None:
        return TeamWindow(active, 0.0, 0.0, 0.0, 0.0, 0.0 if schedule else None)
    length = span.length
    # The sums are exact; the clamps only guard absurd inputs (instants beyond year 70000).
    avg = min(max(span.area / length, span.low), span.high)
    nobody = min(span.nobody, length) / _UNITS
    short = None if span.short is None else min(span.short, length) / _UNITS
    return TeamWindow(active, span.low, span.high, avg, nobody, short)


# Sweep events are sorted as single floats, 4 * millisecond + kind, so that one C-level sort
# orders them and the kind survives it. Whole numbers, exact in a double far beyond any real
# timestamp. Timeline instants stay in these units (quarter milliseconds, kind cleared).
_ENDS, _MARK, _STARTS = 0.0, 1.0, 2.0  # kind - 1 is the change in available agents
_UNITS = 4000.0  # timeline units per second


def _event_keys(instants: Iterable[float], kind: float) -> Iterator[float]:
    millis = map(round, map(mul, instants, repeat(1000.0)))
    return map(add, map(mul, millis, repeat(4.0)), repeat(kind))


def _unit(t: float) -> float:
    """An instant on the timeline: its millisecond, in timeline units."""
    return round(t * 1000.0) * 4.0


def empty_span(start: float, end: float) -> bool:
    """Whether [start, end) has no length at the sweep's resolution (whole milliseconds)."""
    return _unit(end) <= _unit(start)


_STRIDE = 256  # segments per block of the kept suffix extremes


class Concurrency:
    """The team's concurrency as a step function over milliseconds, with running totals.

    Built once from every agent's intervals over a domain [start, end]; `span` then answers
    for any stretch inside the domain with a few binary searches, so one build serves every
    window, and a build over days that no longer change (`reused`) serves every later poll.

    Breakpoint k (times in `_UNITS`) starts segment k, [times[k], times[k + 1]), with
    level[k] agents available; the domain's ends and the requirement's changes are
    breakpoints too (`_MARK` events), so `required` is constant on each segment. Running
    totals have one entry per breakpoint: area[k] sums level * width over segments 0..k-1,
    nobody[k] the width where level is 0, short[k] the width where level < required.
    Millions of intervals are normal here, so values live in compact arrays and every
    per-element step is a map/accumulate/compress that runs in C, not a Python loop.
    """

    def __init__(
        self,
        agents: Iterable[Sequence[Interval]],
        start: float,
        end: float,
        requirement: Requirement | None = None,
        *,
        reused: bool = False,
    ):
        flat = list(chain.from_iterable(agents))
        keys = list(_event_keys(map(_START, flat), _STARTS))
        keys.extend(_event_keys(map(_END, flat), _ENDS))
        del flat
        keys.extend(_event_keys((start, end), _MARK))
        if requirement is not None:
            keys.extend(_event_keys(chain.from_iterable(r[:2] for r in requirement), _MARK))
        keys.sort()
        events = array("d", keys)
        del keys
        kinds = array("d", map(mod, events, repeat(4.0)))
        after = array("d", accumulate(map(sub, kinds, repeat(1.0))))  # level after each event
        instants = array("d", map(sub, events, kinds))
        del events, kinds
        # Several events can share a millisecond; the level after the last of them holds.
        last = array("b", chain(map(ne, instants[1:], instants[:-1]), (True,)))
        self.times = times = array("d", compress(instants, last))
        self.level = level = array("d", compress(after, last))
        del instants, after, last
        widths = array("d", map(sub, times[1:], times[:-1]))
        self.area = _running(map(mul, widths, level))
        self.nobody = _running(map(mul, widths, map(not_, level)))
        self.short = None
        if requirement is not None:
            required = _required_levels(times, requirement)
            self.short = _running(map(mul, widths, map(lt, level, required)))
            self._required = required
        # Answered poll after poll (past days): worth the minima/maxima from every _STRIDE-th
        # segment to the domain's end, so that the extremes of a span reaching that end cost
        # one short slice instead of a walk over a week of segments.
        self._lowest = self._highest = None
        self._end = end_index = bisect_left(times, _unit(end))  # the breakpoint ending the domain
        if reused:
            blocks = range(0, end_index, _STRIDE)
            lows = [min(level[k : min(k + _STRIDE, end_index)]) for k in blocks]
            highs = [max(level[k : min(k + _STRIDE, end_index)]) for k in blocks]
            self._lowest = array("d", accumulate(reversed(lows), min))[::-1]
            self._highest = array("d", accumulate(reversed(highs), max))[::-1]

    def span(self, start: float, end: float) -> Span | None:
        """Concurrency over [start, end), inside the domain; None when it is empty."""
        lo, hi = _unit(start), _unit(end)
        if hi <= lo:
            return None
        times = self.times
        a = bisect_right(times, lo) - 1  # the segment lo falls in
        b = bisect_left(times, hi)  # segments a..b-1 meet [lo, hi)
        if a < 0 or b >= len(times):
            raise ValueError(f"span [{start}, {end}) is outside the timeline's domain")
        if self._lowest is not None and b == self._end and b - a > _STRIDE:  # to the domain's end
            block = a // _STRIDE + 1  # the first whole block after segment a
            head = self.level[a : block * _STRIDE]
            low = min(min(head), self._lowest[block])
            high = max(max(head), self._highest[block])  # type: ignore[index]  # set with _lowest
        else:
            levels = self.level[a:b]
            low, high = min(levels), max(levels)
        short = None
        if self.short is not None:
            short = self._integral(self.short, self._short_weight, hi) - self._integral(
                self.short, self._short_weight, lo
            )
        return Span(
            hi - lo,
            low,
            high,
            self._integral(self.area, self._level_weight, hi)
            - self._integral(self.area, self._level_weight, lo),
            self._integral(self.nobody, self._nobody_weight, hi)
            - self._integral(self.nobody, self._nobody_weight, lo),
            short,
        )

    # A running total at any instant: the total at the segment's start plus its weight times
    # the part of the segment before the instant (all whole numbers of units: exact).
    def _integral(self, totals: array[float], weight, t: float) -> float:
        k = bisect_right(self.times, t) - 1
        return totals[k] + weight(k) * (t - self.times[k])

    def _level_weight(self, k: int) -> float:
        return self.level[k]

    def _nobody_weight(self, k: int) -> float:
        return float(not self.level[k])

    def _short_weight(self, k: int) -> float:
        return float(self.level[k] < self._required[k])


def _running(values: Iterable[float]) -> array[float]:
    return array("d", accumulate(values, initial=0.0))


def _required_levels(times: array[float], requirement: Requirement) -> array[float]:
    """Agents required on each timeline segment (0 where no requirement segment applies)."""
    required = array("d", bytes(8 * len(times)))
    for s, e, n in requirement:
        i, j = bisect_left(times, _unit(s)), bisect_left(times, _unit(e))
        required[i:j] = array("d", [n]) * (j - i)
    return required
