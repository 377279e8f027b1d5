"""The past days' share of a snapshot, kept from one poll to the next (mutable, per server).

The only state the snapshot stage keeps between polls; the poller owns one per server.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from operator import attrgetter
from typing import TYPE_CHECKING

from exporter.availability import (
    AgentWindow,
    Concurrency,
    Tally,
    TeamWindow,
    agent_result,
    bridge_midnight_splits,
    corrected,
    empty_span,
    inner_sum,
    overlaps,
    team_window,
)
from exporter.localtime import day_start, local_date
from exporter.model import DayHistory, Interval
from exporter.parts import Parts, closed_intervals, open_sessions, requirement_between
from exporter.sessions import with_open_sessions

_START = attrgetter("start")
_END = attrgetter("end")


if TYPE_CHECKING:
    from exporter.snapshot import SnapshotInputs


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

    The figures are `whole_parts`'s (per-agent seconds are summed in another order, so in
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
        # Each agent's window figures of the last poll, with what they were computed from:
        # reused while the inputs are the same objects and no window edge reached one of the
        # agent's intervals (see _Figures).
        self.figures: dict[str, _Figures] = {}
        self.reused = 0  # windows whose figures the last poll reused (for tests, benchmarks)

    def parts(
        self, inp: SnapshotInputs, bounds: Sequence[tuple[float, float]], now: float
    ) -> Parts | None:
        today = local_date(now, inp.tz)
        past = [d for d in inp.days if d.day < today]
        if not past:
            return None
        split = day_start(today, inp.tz) - SPLIT_BEFORE_MIDNIGHT
        block = self._past_block(inp, past, split)
        if any(end > start and (start < block.start or end < split) for start, end in bounds):
            return None
        return block.parts_with(inp, [d for d in inp.days if d.day >= today], bounds, now, self)

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
            bridged.values(),
            self.start,
            split,
            requirement_between(inp, self.start, split),
            reused=True,
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
        memo: PastDays | None = None,
    ) -> Parts | None:
        split = self.split
        recent_closed = closed_intervals(recent_days, inp.agent_filter.wants)
        if any(ivs and ivs[0].start < split for ivs in recent_closed.values()):
            return None
        last_closed = dict(self.last_closed)
        last_closed.update((name, ivs[-1].end) for name, ivs in recent_closed.items() if ivs)
        opened = open_sessions(inp, last_closed, now)
        names = self.heads.keys() | recent_closed.keys() | opened.keys()
        closed_after: dict[str, tuple[Interval, ...]] = {}  # after the heads: tail, today
        recent: dict[str, tuple[Interval, ...]] = {}  # the same with the open one, bridged
        no_intervals: tuple[Interval, ...] = ()
        for name in names:
            tail = self.tails.get(name, no_intervals)
            closed = recent_closed.get(name)
            after = tail + tuple(closed) if closed else tail
            ivs = with_open_sessions(after, opened.get(name))
            if ivs:
                closed_after[name] = after
                recent[name] = bridge_midnight_splits(ivs, inp.tz)
        team = self._team(inp, recent, bounds)
        heads, tails = self.heads, self.tails
        old = memo.figures if memo is not None else {}
        new: dict[str, _Figures] = {}
        if memo is not None:
            memo.figures = new
            memo.reused = 0

        recent_maps = [d.agents for d in recent_days]
        remember = memo is not None

        def windows(name: str) -> list[AgentWindow | None]:
            """Past part from the head's running totals, the rest clipped as usual; figures
            of the last poll where nothing they depend on changed. The closed intervals'
            figures are kept; an open session (it grows every poll) is added to them."""
            ivs = closed_after.get(name, no_intervals)
            head = heads.get(name)
            open_iv = opened.get(name)
            # What the agent's closed intervals are made of: the block's tail, the cached days'.
            sources = (head, tails.get(name), *[agents.get(name) for agents in recent_maps])
            kept = old.get(name)
            if (
                kept is None
                or not remember
                or len(kept.limits) != len(bounds)  # the windows changed (a fill completed)
                # Mostly identity checks (the parse memo keeps unchanged agents' objects);
                # equal values give equal figures as well.
                or kept.sources != sources
            ):
                kept = _Figures(sources, len(bounds))
            if remember:
                new[name] = kept
                out, held = kept.windows(ivs, bounds, open_iv, True)
                memo.reused += held  # type: ignore[union-attr]
                return out
            return kept.windows(ivs, bounds, open_iv, False)[0]

        return Parts(names, last_closed, opened, windows, team)

    def _team(
        self,
        inp: SnapshotInputs,
        recent: dict[str, tuple[Interval, ...]],
        bounds: Sequence[tuple[float, float]],
    ) -> list[TeamWindow]:
        split = self.split
        end = max([split, *(b for _, b in bounds)])
        timeline = Concurrency(recent.values(), split, end, requirement_between(inp, split, end))
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


class _Figures:
    """One agent's window figures as last computed, and for which edges they still hold.

    `clip` sums the whole lengths of the intervals sharing time with a window, then takes
    off the first one's part before the window and the last one's after it. For window k it
    keeps that inner sum per sequence (the past head's, the recent intervals'), the first
    and last boundary, the count, and the range of start and end edges for which the same
    intervals are inside: between the boundaries either side of each edge. While the agent's
    inputs are the same objects (its past head, its cached days' entries) and both edges
    stay in range, a poll only redoes the two corrections, the same operations in the same
    order as a fresh clip: the same floats. An edge inside an interval (a rolling window
    starting while the agent was available a day ago) stays in range for as long as that
    interval lasts.
    """

    __slots__ = ("sources", "limits", "pieces", "last")

    def __init__(self, sources: tuple, windows: int):
        self.sources = sources  # (head, tail, each recent day's entry): what they hold for
        # (start >=, start <, end >, end <=) per window: where `pieces` hold
        self.limits: list[tuple[float, float, float, float] | None] = [None] * windows
        self.pieces: list[_Pieces] = [_NO_PIECES] * windows
        self.last: list[tuple[float, int, float, AgentWindow | None]] = [
            (math.nan, 0, math.nan, None)
        ] * windows

    def windows(
        self,
        ivs: Sequence[Interval],
        bounds: Sequence[tuple[float, float]],
        open_iv: Interval | None,
        remember: bool,
    ) -> tuple[list[AgentWindow | None], int]:
        """The agent's figures per window, and in how many windows the kept pieces held."""
        out: list[AgentWindow | None] = []
        held = 0
        limits, kept_pieces, last = self.limits, self.pieces, self.last
        for k, (start, end) in enumerate(bounds):
            if end <= start:
                out.append(None)
                continue
            lim = limits[k]
            if lim is not None and lim[0] <= start < lim[1] and lim[2] < end <= lim[3]:
                pieces = kept_pieces[k]
                held += 1
            else:
                pieces, lim = _pieces(ivs, self.sources[0], start, end)
                if remember:
                    limits[k], kept_pieces[k] = lim, pieces
            head, recent, count = pieces
            seconds = 0.0
            if recent is not None:
                seconds = corrected(*recent, start, end)
            if head is not None:
                seconds = corrected(*head, start, end) + seconds
            length = end - start
            if open_iv is not None:
                seconds, count = with_open_part(seconds, count, ivs, open_iv, start, end)
                out.append(agent_result(seconds, count, length))
            elif last[k][:3] == (seconds, count, length):
                out.append(last[k][3])  # the same object as last poll's: the page reuses it
            else:
                window = agent_result(seconds, count, length)
                last[k] = (seconds, count, length, window)
                out.append(window)
        return out, held


# (inner sum, first start, last end) of the past head's and of the recent intervals inside a
# window (None where none is), and their positive intervals' count.
_Piece = tuple[float, float, float]
_Pieces = tuple[_Piece | None, _Piece | None, int]
_NO_PIECES: _Pieces = (None, None, 0)


def _pieces(
    ivs: Sequence[Interval], head: Tally | None, start: float, end: float
) -> tuple[_Pieces, tuple[float, float, float, float]]:
    lim = [-math.inf, math.inf, -math.inf, math.inf]
    recent_piece = head_piece = None
    count = 0
    if ivs:
        i = bisect_right(ivs, start, key=_END)
        j = bisect_left(ivs, end, i, key=_START)
        _narrow(lim, ivs, i, j)
        if i < j:
            inner, count = inner_sum(ivs, i, j)
            recent_piece = (inner, ivs[i].start, ivs[j - 1].end)
    if head is not None and head.intervals:
        hivs = head.intervals
        i, j = head.bisect(start, end)
        _narrow(lim, hivs, i, j)
        if i < j:
            inner, n = head.inner_sum(i, j)
            head_piece = (inner, hivs[i].start, hivs[j - 1].end)
            count += n
    return (head_piece, recent_piece, count), (lim[0], lim[1], lim[2], lim[3])


def _narrow(lim: list[float], ivs: Sequence[Interval], i: int, j: int) -> None:
    """Narrow `lim` to the edges for which bisecting `ivs` gives the same i and j again."""
    n = len(ivs)
    if i > 0:
        lim[0] = max(lim[0], ivs[i - 1].end)
    if i < n:
        lim[1] = min(lim[1], ivs[i].end)
    if j > 0:
        lim[2] = max(lim[2], ivs[j - 1].start)
    if j < n:
        lim[3] = min(lim[3], ivs[j].start)


def with_open_part(
    seconds: float,
    count: int,
    closed: Sequence[Interval],
    open_: Interval,
    start: float,
    end: float,
) -> tuple[float, int]:
    """Window figures of the closed intervals plus the open session's share of [start, end].

    The open session starts at or after every closed interval's end (exporter.sessions), so
    the two never overlap; where it starts exactly at the last one's end they are one merged
    interval (`with_open_sessions`), which counts once. The sum is the same for a kept and a
    fresh figure, so a kept closed part gives the same float as computing it again.
    """
    part = min(end, open_.end) - max(start, open_.start)
    if part <= 0:
        return seconds, count
    if closed:
        last = closed[-1]
        if last.end == open_.start and last.start < last.end and start < last.end:
            count -= 1  # the merged interval was already counted by its closed half
    return seconds + part, count + 1


def _reach(intervals: Sequence[Interval], split: float) -> float:
    """The latest instant before `split` covered by a positive-length interval (or -inf)."""
    for k in range(bisect_left(intervals, split, key=_START) - 1, -1, -1):
        iv = intervals[k]
        if iv.end > iv.start:
            return min(iv.end, split)
    return -math.inf
