"""Open sessions: streaks over polls, the open part of a session, merging with history."""

from __future__ import annotations

from datetime import datetime
from itertools import pairwise
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from exporter.availability import AgentWindow, agent_window, local_midnight
from exporter.intervals import merge_intervals
from exporter.model import Interval
from exporter.sessions import Streak, open_session, update_streaks, with_open_sessions

UTC = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
MINUTE = 60.0
HOUR = 3600.0


def ts(*args, tz=UTC) -> float:
    return datetime(*args, tzinfo=tz).timestamp()


def iv(start: float, end: float) -> Interval:
    return Interval(float(start), float(end))


# ---- update_streaks ----------------------------------------------------------------------


def test_streaks_start_continue_and_end():
    t0 = 1000.0
    first = update_streaks({}, ["ana", "bo"], t0)
    assert first == {"ana": Streak(t0, t0), "bo": Streak(t0, t0)}
    second = update_streaks(first, ["ana", "cy"], t0 + 60)
    assert second == {"ana": Streak(t0, t0 + 60), "cy": Streak(t0 + 60, t0 + 60)}  # bo ended


def test_failed_live_poll_neither_extends_nor_ends_streaks():
    prev = {"ana": Streak(1000.0, 1060.0)}
    kept = update_streaks(prev, None, 1120.0)
    assert kept == prev
    assert kept is not prev  # a new dict: the caller may keep both


def test_nobody_available_ends_every_streak():
    assert update_streaks({"ana": Streak(1.0, 2.0)}, [], 3.0) == {}


# ---- open_session ------------------------------------------------------------------------


def test_open_session_runs_from_streak_start_to_now():
    midnight = ts(2026, 11, 25)
    streak = Streak(ts(2026, 11, 25, 9, 30), ts(2026, 11, 25, 10, 0))
    assert open_session(streak, None, midnight, ts(2026, 11, 25, 10, 0)) == iv(
        ts(2026, 11, 25, 9, 30), ts(2026, 11, 25, 10, 0)
    )


def test_open_session_never_reaches_before_local_midnight():
    # Available since yesterday evening: Rocket.Chat closed that part at 23:59:59 and reopened
    # the session at 00:00 server-local (Berlin here: 23:00 UTC).
    now = ts(2026, 11, 25, 1, 0, tz=BERLIN)
    midnight = local_midnight(now, BERLIN)
    streak = Streak(ts(2026, 11, 24, 20, 0, tz=BERLIN), now)
    evening = iv(ts(2026, 11, 24, 19, 55, tz=BERLIN), ts(2026, 11, 24, 23, 59, 59, tz=BERLIN))
    assert open_session(streak, evening.end, midnight, now) == iv(midnight, now)
    assert midnight == ts(2026, 11, 24, 23, 0)


def test_open_session_starts_after_the_latest_closed_interval():
    # The agent stopped and restarted between two polls: the streak went on, the history
    # already holds the closed part.
    streak = Streak(1000.0, 5000.0)
    assert open_session(streak, 4000.0, 0.0, 5000.0) == iv(4000, 5000)
    assert open_session(streak, 500.0, 0.0, 5000.0) == iv(1000, 5000)  # an older session


def test_open_session_without_length_is_none():
    assert open_session(Streak(1000.0, 1000.0), None, 0.0, 1000.0) is None  # just started
    assert open_session(Streak(1000.0, 2000.0), 2000.0, 0.0, 2000.0) is None
    assert open_session(Streak(1000.0, 2000.0), None, 0.0, 500.0) is None  # clock went back


def test_last_closed_end_zero_is_not_ignored():
    assert open_session(Streak(-100.0, 50.0), 0.0, -1000.0, 50.0) == iv(0, 50)


# ---- with_open_sessions ------------------------------------------------------------------


def test_thirty_of_sixty_minutes_with_session_still_open():
    # Unavailable 09:00-09:30, available since 09:30, session still open at 10:00.
    now = ts(2026, 11, 25, 10, 0)
    streak = Streak(ts(2026, 11, 25, 9, 30), now)
    open_ = open_session(streak, None, ts(2026, 11, 25), now)
    intervals = with_open_sessions((), open_)
    assert agent_window(intervals, now - HOUR, now) == AgentWindow(1800.0, 0.5, 1)


def test_no_double_count_when_the_closed_interval_appears():
    # Polls at 09:30 and 10:00 saw the agent available. Between them the agent stopped at
    # 09:59:30 and restarted at 09:59:50; the history now holds [09:29:40, 09:59:30].
    now = ts(2026, 11, 25, 10, 0)
    streak = Streak(ts(2026, 11, 25, 9, 30), now)
    closed = (iv(ts(2026, 11, 25, 9, 29, 40), ts(2026, 11, 25, 9, 59, 30)),)
    open_ = open_session(streak, closed[-1].end, ts(2026, 11, 25), now)
    assert open_ == iv(ts(2026, 11, 25, 9, 59, 30), now)
    merged = with_open_sessions(closed, open_)
    assert merged == (iv(ts(2026, 11, 25, 9, 29, 40), now),)
    assert agent_window(merged, now - HOUR, now) == AgentWindow(1820.0, 1820 / 3600, 1)


def test_history_wins_even_without_last_closed_end():
    # Had the caller not clipped the open part, the union still counts every second once.
    closed = (iv(100, 700),)
    merged = with_open_sessions(closed, iv(400, 1000))
    assert merged == (iv(100, 1000),)
    assert agent_window(merged, 0, 1000).seconds == 900


def test_open_session_after_the_history_is_appended():
    closed = (iv(100, 200), iv(300, 400))
    assert with_open_sessions(closed, iv(500, 600)) == (*closed, iv(500, 600))
    assert with_open_sessions(closed, None) == closed
    assert with_open_sessions([], iv(1, 2)) == (iv(1, 2),)


def test_open_session_touching_or_covering_several_closed_intervals():
    closed = (iv(0, 100), iv(200, 300), iv(400, 500), iv(600, 700))
    assert with_open_sessions(closed, iv(300, 450)) == (iv(0, 100), iv(200, 500), iv(600, 700))
    assert with_open_sessions(closed, iv(150, 160)) == (
        iv(0, 100),
        iv(150, 160),
        iv(200, 300),
        iv(400, 500),
        iv(600, 700),
    )
    assert with_open_sessions(closed, iv(50, 1000)) == (iv(0, 1000),)


@given(
    raw=st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 100)), max_size=10),
    open_start=st.integers(0, 1200),
    open_len=st.integers(0, 300),
)
def test_with_open_sessions_is_a_merge(raw, open_start, open_len):
    closed, _ = merge_intervals(iv(s, s + n) for s, n in raw)
    open_ = iv(open_start, open_start + open_len)
    got = with_open_sessions(closed, open_)
    assert got == merge_intervals([*closed, open_])[0]
    assert all(a.end < b.start for a, b in pairwise(got))


def test_open_session_stops_growing_when_status_is_unknown():
    # Seen available last at 1_000 (then only the agents-status chart could be read): the
    # open part ends there, not at `now`.
    streak = Streak(start=400.0, last_seen=1_000.0)
    assert open_session(streak, None, 0.0, 5_000.0) == Interval(400.0, 1_000.0)
