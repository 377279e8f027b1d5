"""Detect a Rocket.Chat server whose time zone is not the configured one. Pure functions.

Rocket.Chat's midnight job closes every open session at 23:59:59 server-local and reopens it
at 00:00:00 of the next day, so a session across midnight is stored as an interval ending at
23:59:59 on one day and one starting exactly one second later on the next. Where that second
falls tells us the server's own midnight: if it is not midnight in the configured zone, the
configured `timezone` is wrong (the windows `today`/`yesterday` and the per-day cache then
cut days at the wrong instant).

Only exactly that pattern counts as evidence: a gap of exactly 1.000 s whose later end is a
whole UTC minute. A real agent stopping at hh:mm:59.000 and starting again at the next
minute to the millisecond is not a thing that happens.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

from exporter.model import DayHistory

SPLIT_GAP_SECONDS = 1.0


def midnight_splits(before: DayHistory, after: DayHistory) -> Iterator[float]:
    """Instants where an agent's last interval of `before` and first of `after` look like
    the midnight job's split (yields the instant the second interval starts)."""
    for name, agent in after.agents.items():
        if not agent.intervals:
            continue
        prev = before.agents.get(name)
        if prev is None or not prev.intervals:
            continue
        end, start = prev.intervals[-1].end, agent.intervals[0].start
        if start - end == SPLIT_GAP_SECONDS and start % 60 == 0:
            yield start


def is_local_midnight(instant: float, tz: ZoneInfo) -> bool:
    local = datetime.fromtimestamp(instant, tz)
    return (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0)


def implied_utc_offset(midnight: float) -> float:
    """The UTC offset (seconds) of a zone whose local midnight is at `midnight`, in
    (-12 h, +12 h] (zones at +13/+14 h show as -11/-10 h: the same wall clock, a day apart)."""
    after_utc_midnight = midnight % 86400
    return -after_utc_midnight if after_utc_midnight < 43200 else 86400 - after_utc_midnight


def format_offset(seconds: float) -> str:
    sign = "+" if seconds >= 0 else "-"
    minutes = int(abs(seconds)) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def zone_mismatch(before: DayHistory, after: DayHistory, tz: ZoneInfo) -> float | None:
    """The server's UTC offset when the split between these days is not at `tz`'s midnight;
    None when it is, or when no agent's session crossed that midnight."""
    for start in midnight_splits(before, after):
        if not is_local_midnight(start, tz):
            return implied_utc_offset(start)
    return None
