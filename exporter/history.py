"""Per-day history cache: which server-local days to (re)fetch, and what is already final.

Rocket.Chat answers one server-local day per request, and a day that has ended no longer
changes (its sessions were closed by the midnight job at 23:59:59). So past days are fetched
once and kept, today is refetched every poll, and yesterday once more just after midnight to
pick up the sessions the midnight job closed. The cache is bounded by the longest window.

Pure bookkeeping: `now` is always a parameter, fetching is the poller's job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from exporter.localtime import day_start, local_date
from exporter.model import DayHistory

# A day fetched this long after its local end is final. The margin covers the midnight job's
# run time and modest clock skew between the exporter and Rocket.Chat.
FINAL_AFTER_SECONDS = 120.0


@dataclass(frozen=True, slots=True)
class CachedDay:
    history: DayHistory
    fetched_at: float
    final: bool


class HistoryCache:
    """Days of history for one server, keyed by server-local date."""

    def __init__(self, tz: ZoneInfo, keep_days: int):
        self.tz = tz
        self.keep_days = max(1, keep_days)  # today plus keep_days - 1 past days
        self._days: dict[date, CachedDay] = {}

    def wanted_range(self, now: float) -> list[date]:
        today = local_date(now, self.tz)
        return [today - timedelta(days=i) for i in range(self.keep_days - 1, -1, -1)]

    def days_to_fetch(self, now: float) -> list[date]:
        """Days missing or not yet final, newest first so the live picture arrives first."""
        todo = [d for d in self.wanted_range(now) if not self._is_final(d)]
        return sorted(todo, reverse=True)

    def store(self, history: DayHistory, fetched_at: float) -> None:
        end = day_start(history.day + timedelta(days=1), self.tz)
        final = fetched_at >= end + FINAL_AFTER_SECONDS
        self._days[history.day] = CachedDay(history, fetched_at, final)

    def prune(self, now: float) -> None:
        keep = set(self.wanted_range(now))
        for d in [d for d in self._days if d not in keep]:
            del self._days[d]

    def days(self, now: float) -> list[DayHistory]:
        """Cached days inside the wanted range, oldest first."""
        return [self._days[d].history for d in self.wanted_range(now) if d in self._days]

    def _is_final(self, day: date) -> bool:
        cached = self._days.get(day)
        return cached is not None and cached.final

    def __len__(self) -> int:
        return len(self._days)
