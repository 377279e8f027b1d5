"""Per-day history cache: which server-local days to (re)fetch, and what is already final.

Rocket.Chat answers one server-local day per request, and a day that has ended no longer
changes (its sessions were closed by the midnight job at 23:59:59). So past days are fetched
once and kept, today is refetched every poll, and yesterday once more just after midnight to
pick up the sessions the midnight job closed. The cache is bounded by the longest window.

With a DayStore (exporter/daystore.py, `history_cache_dir`), final days are also kept on disk:
each one is written when it becomes final, the wanted ones are read back on first use, and
files of days outside the range are deleted. A restart then fetches only what is not final.

Bookkeeping: `now` is always a parameter, fetching is the poller's job, the store's I/O is its
own (and never fails: an unusable file is a day to fetch).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from exporter.localtime import day_start, local_date
from exporter.model import DayHistory

if TYPE_CHECKING:
    from exporter.config.model import Config, ServerConfig
    from exporter.daystore import DayStore

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

    def __init__(self, tz: ZoneInfo, keep_days: int, store: DayStore | None = None):
        self.tz = tz
        self.keep_days = max(1, keep_days)  # today plus keep_days - 1 past days
        self._days: dict[date, CachedDay] = {}
        self._store = store
        self._loaded = store is None
        self._store_range: date | None = None  # first wanted day when the store was pruned

    @classmethod
    def for_server(cls, server: ServerConfig, config: Config) -> HistoryCache:
        """The cache a poller needs: as many days as the longest window, on disk if set."""
        # Here, not at the top: HistoryCache itself (and its tests) needs no file I/O.
        from exporter.daystore import DayStore

        tz = ZoneInfo(server.timezone)
        return cls(tz, config.history_days, DayStore.for_server(config, server))

    def wanted_range(self, now: float) -> list[date]:
        today = local_date(now, self.tz)
        return [today - timedelta(days=i) for i in range(self.keep_days - 1, -1, -1)]

    def days_to_fetch(self, now: float) -> list[date]:
        """Days missing or not yet final, newest first so the live picture arrives first."""
        self._load(now)
        todo = [d for d in self.wanted_range(now) if not self._is_final(d)]
        return sorted(todo, reverse=True)

    def store(self, history: DayHistory, fetched_at: float) -> None:
        final = self._final_at(history.day, fetched_at)
        was_final = self._is_final(history.day)
        cached = self._days.get(history.day)
        if cached is not None and cached.history is not history and cached.history == history:
            # The same content fetched again (yesterday after midnight, until it is final):
            # keep the object already cached, so what is built from it (the snapshot's past
            # part) is not rebuilt for nothing.
            history = cached.history
        self._days[history.day] = CachedDay(history, fetched_at, final)
        if final and not was_final and self._store is not None:
            self._store.save(history, fetched_at)

    def prune(self, now: float) -> None:
        wanted = self.wanted_range(now)
        keep = set(wanted)
        for d in [d for d in self._days if d not in keep]:
            del self._days[d]
        if self._store is not None and self._store_range != wanted[0]:
            self._store_range = wanted[0]  # the range moves once a day: prune files then
            self._store.prune(keep)

    def days(self, now: float) -> list[DayHistory]:
        """Cached days inside the wanted range, oldest first."""
        return [self._days[d].history for d in self.wanted_range(now) if d in self._days]

    def _load(self, now: float) -> None:
        """Once, before the first fetch: the final past days of the wanted range from disk."""
        if self._loaded or self._store is None:
            return
        self._loaded = True
        today = local_date(now, self.tz)
        past = [d for d in self.wanted_range(now) if d < today and d not in self._days]
        for stored in self._store.load(past):
            # Final by its own fetch time, as when it was written; a file claiming otherwise
            # (the clock went back, a bug) is simply not used.
            if self._final_at(stored.history.day, stored.fetched_at):
                self._days[stored.history.day] = CachedDay(stored.history, stored.fetched_at, True)

    def _final_at(self, day: date, fetched_at: float) -> bool:
        end = day_start(day + timedelta(days=1), self.tz)
        return fetched_at >= end + FINAL_AFTER_SECONDS

    def _is_final(self, day: date) -> bool:
        cached = self._days.get(day)
        return cached is not None and cached.final

    def __len__(self) -> int:
        return len(self._days)
