"""Server-local calendar days, shared by every stage: pure functions of `now` and a zone.

Rocket.Chat keeps one history document per agent per day of its own process's time zone, so
days, midnights and "today" are always meant in that zone (servers[].timezone).
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo


def local_date(now: float, tz: ZoneInfo) -> date:
    return datetime.fromtimestamp(now, tz).date()


def day_start(day: date, tz: ZoneInfo) -> float:
    """Unix time at which the server-local calendar `day` starts (DST-correct).

    Where midnight does not exist (a DST change at 00:00, e.g. America/Santiago), this is the
    instant of the change, when the local clock jumps from 23:59:59 to 01:00.
    """
    return datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()
