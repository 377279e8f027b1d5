"""Merging availability intervals: shared by the parser (which repairs Rocket.Chat's
duplicates) and the math. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from operator import attrgetter

from exporter.model import Interval

_START = attrgetter("start")


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
