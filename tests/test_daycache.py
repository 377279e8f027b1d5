"""The per-day history cache: what to fetch, what is final, what is kept."""

from datetime import date, datetime
from zoneinfo import ZoneInfo

from exporter.daycache import FINAL_AFTER_SECONDS, HistoryCache
from exporter.daystore import DayStore
from exporter.localtime import day_start, local_date
from exporter.model import AgentDay, DayHistory, Interval

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


# ---- with a store on disk (history_cache_dir) --------------------------------------------


def stored_cache(tmp_path, keep_days: int = 3, tz: ZoneInfo = UTC) -> HistoryCache:
    return HistoryCache(tz, keep_days, DayStore(str(tmp_path), "rc", "https://rc", str(tz)))


def filled(cache: HistoryCache, now: float) -> None:
    for d in cache.days_to_fetch(now):
        cache.store(agent_day(d), now)
    cache.prune(now)


def agent_day(d: date) -> DayHistory:
    start = day_start(d, UTC)
    a = AgentDay("alice", (Interval(start + 60, start + 3600.5),), 3540.0)
    return DayHistory(day=d, agents={"alice": a}, total=1)


def files(tmp_path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "server-rc").glob("*.day"))


def test_only_final_days_are_written(tmp_path):
    cache = stored_cache(tmp_path)
    now = ts(2026, 11, 25, 10, 0)
    filled(cache, now)
    assert files(tmp_path) == ["2026-11-23.day", "2026-11-24.day"]  # not today
    # Yesterday fetched inside the grace period after midnight is not final: not written.
    cache = stored_cache(tmp_path / "b", keep_days=2)
    filled(cache, ts(2026, 11, 26, 0, 1))
    assert files(tmp_path / "b") == []
    cache.store(agent_day(date(2026, 11, 25)), ts(2026, 11, 26, 0, 0) + FINAL_AFTER_SECONDS)
    assert files(tmp_path / "b") == ["2026-11-25.day"]


def test_a_restart_fetches_only_today(tmp_path):
    now = ts(2026, 11, 25, 10, 0)
    first = stored_cache(tmp_path, keep_days=8)
    filled(first, now)
    restarted = stored_cache(tmp_path, keep_days=8)
    assert restarted.days_to_fetch(now + 60) == [date(2026, 11, 25)]
    assert restarted.days(now + 60) == [d for d in first.days(now) if d.day < date(2026, 11, 25)]


def test_a_restart_after_midnight_fetches_the_new_day_and_yesterday(tmp_path):
    filled(stored_cache(tmp_path), ts(2026, 11, 25, 10, 0))
    # Two days later: the 25th (never final) and the 26th are missing; the 24th is loaded.
    restarted = stored_cache(tmp_path)
    later = ts(2026, 11, 26, 9, 0)
    assert restarted.days_to_fetch(later) == [date(2026, 11, 26), date(2026, 11, 25)]


def test_prune_deletes_the_files_of_days_that_left_the_range(tmp_path):
    cache = stored_cache(tmp_path)
    filled(cache, ts(2026, 11, 25, 10, 0))
    filled(cache, ts(2026, 11, 27, 10, 0))
    assert files(tmp_path) == ["2026-11-25.day", "2026-11-26.day"]


def test_a_file_that_claims_a_day_final_too_early_is_not_used(tmp_path):
    store = DayStore(str(tmp_path), "rc", "https://rc", "UTC")
    store.save(agent_day(date(2026, 11, 24)), ts(2026, 11, 24, 23, 0))  # before its end
    cache = HistoryCache(UTC, 3, store)
    assert date(2026, 11, 24) in cache.days_to_fetch(ts(2026, 11, 25, 10, 0))


def test_without_a_store_nothing_changes(tmp_path):
    cache = HistoryCache(UTC, keep_days=3)
    filled(cache, ts(2026, 11, 25, 10, 0))
    assert len(cache) == 3 and list(tmp_path.iterdir()) == []


def test_a_refetched_day_with_the_same_content_keeps_its_object():
    """After midnight yesterday is refetched until final; an unchanged answer must not look
    like a new day (the snapshot's past part is keyed by the days' identities)."""
    cache = HistoryCache(UTC, 3)
    day = date(2026, 3, 4)
    first = DayHistory(day, {"a": AgentDay("a", (Interval(1.0, 2.0),), 1.0)}, total=1)
    end = day_start(date(2026, 3, 5), UTC)
    cache.store(first, end + 10)
    same = DayHistory(day, {"a": AgentDay("a", (Interval(1.0, 2.0),), 1.0)}, total=1)
    cache.store(same, end + 70)
    assert cache.days(end + 70) == [first] and cache.days(end + 70)[0] is first
    changed = DayHistory(day, {"a": AgentDay("a", (Interval(1.0, 3.0),), 2.0)}, total=1)
    cache.store(changed, end + 130)
    assert cache.days(end + 130)[0] is changed
    assert day not in cache.days_to_fetch(end + 130)  # final now
