"""The per-day history cache: what to fetch, what is final, what is kept."""

from datetime import date, datetime
from zoneinfo import ZoneInfo

from exporter.history import FINAL_AFTER_SECONDS, HistoryCache
from exporter.localtime import day_start, local_date
from exporter.model import DayHistory

UTC = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
KOLKATA = ZoneInfo("Asia/Kolkata")


def ts(*args, tz=UTC) -> float:
    return datetime(*args, tzinfo=tz).timestamp()


def day(d: date) -> DayHistory:
    return DayHistory(day=d, agents={}, total=0)


def test_first_poll_fetches_every_day_of_the_range_newest_first():
    cache = HistoryCache(UTC, keep_days=3)
    now = ts(2026, 11, 25, 10, 0)
    assert cache.days_to_fetch(now) == [date(2026, 11, 25), date(2026, 11, 24), date(2026, 11, 23)]


def test_steady_state_refetches_only_today():
    cache = HistoryCache(UTC, keep_days=8)
    now = ts(2026, 11, 25, 10, 0)
    for d in cache.days_to_fetch(now):
        cache.store(day(d), now)
    assert cache.days_to_fetch(now + 60) == [date(2026, 11, 25)]
    assert [d.day for d in cache.days(now + 60)] == cache.wanted_range(now + 60)


def test_yesterday_is_fetched_once_more_after_midnight_then_final():
    cache = HistoryCache(UTC, keep_days=2)
    evening = ts(2026, 11, 25, 23, 59, 30)
    for d in cache.days_to_fetch(evening):
        cache.store(day(d), evening)
    just_after = ts(2026, 11, 26, 0, 0, 30)
    # 25th was fetched before it ended: fetch again; 26th is new.
    assert cache.days_to_fetch(just_after) == [date(2026, 11, 26), date(2026, 11, 25)]
    cache.store(day(date(2026, 11, 25)), just_after)
    cache.store(day(date(2026, 11, 26)), just_after)
    # Still inside the grace period: yesterday once more.
    assert date(2026, 11, 25) in cache.days_to_fetch(just_after + 10)
    later = ts(2026, 11, 26, 0, 0) + FINAL_AFTER_SECONDS + 1
    cache.store(day(date(2026, 11, 25)), later)
    assert cache.days_to_fetch(later + 60) == [date(2026, 11, 26)]


def test_prune_keeps_only_the_range():
    cache = HistoryCache(UTC, keep_days=2)
    now = ts(2026, 11, 25, 10, 0)
    for d in cache.days_to_fetch(now):
        cache.store(day(d), now)
    later = ts(2026, 11, 27, 10, 0)
    cache.prune(later)
    assert len(cache) == 0
    assert [d.day for d in cache.days(later)] == []


def test_days_are_server_local():
    # 20:00 UTC on the 25th is already the 26th in Kolkata (+05:30).
    now = ts(2026, 11, 25, 20, 0)
    assert local_date(now, KOLKATA) == date(2026, 11, 26)
    cache = HistoryCache(KOLKATA, keep_days=1)
    assert cache.days_to_fetch(now) == [date(2026, 11, 26)]


def test_day_start_is_dst_correct():
    # Berlin springs forward on 2026-03-29: that day is 23 h long.
    start = day_start(date(2026, 3, 29), BERLIN)
    end = day_start(date(2026, 3, 30), BERLIN)
    assert end - start == 23 * 3600
    assert start == ts(2026, 3, 28, 23, 0)
