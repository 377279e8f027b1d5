"""Open sessions: the part of an agent's availability Rocket.Chat has not written down yet.

Rocket.Chat records a session only when it closes, so an agent available for the last three
hours has nothing in its history for them. The exporter tracks what it sees itself: a streak
starts at the first poll that sees the agent available and lasts while later polls still do.
The open part of the session is then [max(streak start, end of the latest closed interval,
server-local midnight), now]: the midnight job closes every session at 23:59:59 and reopens
it at 00:00, so the open part never reaches back before today. When the closed interval
later appears in the history, it is merged with the open one and the history wins: nothing
is counted twice.

Pure functions: the poller keeps the streaks between polls and passes `now`.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter

from exporter.model import Interval

_START = attrgetter("start")
_END = attrgetter("end")


@dataclass(frozen=True, slots=True)
class Streak:
    """An agent seen available at every poll from `start` to `last_seen`."""

    start: float
    last_seen: float


def update_streaks(
    prev: Mapping[str, Streak], available: Iterable[str] | None, now: float
) -> dict[str, Streak]:
    """The streaks after a poll at `now` that saw the usernames in `available` available.

    A streak continues (same start, last_seen = now) while the agent stays available, starts
    at `now` for a newly available agent, and ends (is dropped) when the agent is not
    available now. `available` None means the live status could not be read: the streaks are
    returned unchanged, since a failed poll knows nothing to extend or end them with.
    """
    if available is None:
        return dict(prev)
    streaks: dict[str, Streak] = {}
    for name in available:
        old = prev.get(name)
        streaks[name] = Streak(start=old.start if old is not None else now, last_seen=now)
    return streaks


def open_session(
    streak: Streak, last_closed_end: float | None, local_midnight: float, now: float
) -> Interval | None:
    """The still-open part of a streak's session, or None when it has no length.

    It starts at the latest of the streak start, the end of the agent's latest closed
    interval (time already in the history is not claimed twice) and today's server-local
    midnight, and ends at the last poll that saw the agent available (`now` in a normal
    poll). While per-agent status is unknown (the chart fallback), the streaks are kept but
    stop growing: the exporter claims no availability it has not seen.
    """
    start = max(streak.start, local_midnight)
    if last_closed_end is not None:
        start = max(start, last_closed_end)
    end = min(now, streak.last_seen)
    if end <= start:
        return None
    return Interval(start, end)


def with_open_sessions(closed: Sequence[Interval], open_: Interval | None) -> tuple[Interval, ...]:
    """An agent's closed intervals (sorted, merged) plus its open one, still sorted and merged.

    Where the open interval overlaps or touches closed ones they become one interval (their
    union), so a session the history has meanwhile closed is counted once. Runs in O(log n)
    plus a copy: the open interval normally sits after every closed one.
    """
    if open_ is None:
        return tuple(closed)
    if not closed or open_.start > closed[-1].end:
        return (*closed, open_)
    # closed[i:j] are exactly the intervals that overlap or touch open_ (the rule of
    # merge_intervals: start <= previous end).
    i = bisect_left(closed, open_.start, key=_END)
    j = bisect_right(closed, open_.end, lo=i, key=_START)
    if i == j:
        return (*closed[:i], open_, *closed[j:])
    joined = Interval(min(open_.start, closed[i].start), max(open_.end, closed[j - 1].end))
    return (*closed[:i], joined, *closed[j:])
