"""Availability math: merging, windows, one agent, the team sweep (against a slow reference)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.availability import (
    AgentWindow,
    TeamWindow,
    agent_window,
    bridge_midnight_splits,
    local_midnight,
    team_windows,
    window_bounds,
)
from exporter.config.model import Window
from exporter.intervals import merge_intervals
from exporter.localtime import day_start
from exporter.model import Interval

UTC = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
KOLKATA = ZoneInfo("Asia/Kolkata")
SANTIAGO = ZoneInfo("America/Santiago")
HOUR = 3600.0
DAY = 86400.0

TODAY = Window(name="today", kind="today")
YESTERDAY = Window(name="yesterday", kind="yesterday")
ONE_HOUR = Window(name="1h", kind="duration", seconds=HOUR)
ONE_DAY = Window(name="24h", kind="duration", seconds=DAY)


def ts(*args, tz=UTC) -> float:
    return datetime(*args, tzinfo=tz).timestamp()


def iv(start: float, end: float) -> Interval:
    return Interval(float(start), float(end))


# ---- merge_intervals ---------------------------------------------------------------------


def test_double_stop_duplicate_is_merged_and_counted():
    # Rocket.Chat's repeated stop: same startedAt twice (once with the same, once a later stop).
    entries = [iv(100, 200), iv(100, 200), iv(100, 250)]
    assert merge_intervals(entries) == ((iv(100, 250),), 2)


def test_overlapping_touching_and_unsorted_entries_merge():
    entries = [iv(500, 600), iv(0, 100), iv(50, 150), iv(150, 160), iv(550, 580)]
    assert merge_intervals(entries) == ((iv(0, 160), iv(500, 600)), 3)


def test_midnight_split_one_second_apart_stays_two_intervals():
    evening = iv(ts(2026, 11, 24, 20, 0), ts(2026, 11, 24, 23, 59, 59))
    morning = iv(ts(2026, 11, 25, 0, 0), ts(2026, 11, 25, 2, 0))
    assert merge_intervals([morning, evening]) == ((evening, morning), 0)


def test_zero_length_entries_kept_alone_merged_when_touching():
    assert merge_intervals([iv(10, 10), iv(20, 30), iv(30, 30)]) == ((iv(10, 10), iv(20, 30)), 1)


def test_merge_of_nothing():
    assert merge_intervals([]) == ((), 0)


# ---- window_bounds -----------------------------------------------------------------------


def test_duration_window_ends_now():
    now = ts(2026, 11, 25, 10, 0)
    assert window_bounds(ONE_HOUR, now, BERLIN) == (now - HOUR, now)


def test_today_and_yesterday_in_utc():
    now = ts(2026, 11, 25, 10, 30)
    assert window_bounds(TODAY, now, UTC) == (ts(2026, 11, 25), now)
    assert window_bounds(YESTERDAY, now, UTC) == (ts(2026, 11, 24), ts(2026, 11, 25))


def test_today_starts_at_server_local_midnight_far_from_utc():
    # Kolkata is UTC+05:30: its midnight is 18:30 UTC of the previous day.
    now = ts(2026, 11, 25, 3, 0)  # 08:30 in Kolkata
    start, end = window_bounds(TODAY, now, KOLKATA)
    assert start == ts(2026, 11, 24, 18, 30)
    assert end == now
    # 20:00 UTC is already the next day in Kolkata.
    assert window_bounds(TODAY, ts(2026, 11, 24, 20, 0), KOLKATA)[0] == ts(2026, 11, 24, 18, 30)
    assert window_bounds(YESTERDAY, now, KOLKATA) == (ts(2026, 11, 23, 18, 30), start)


def test_berlin_spring_forward_day_is_23_hours():
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST.
    on_the_day = ts(2026, 3, 29, 12, 0, tz=BERLIN)
    start, _ = window_bounds(TODAY, on_the_day, BERLIN)
    assert start == ts(2026, 3, 28, 23, 0)  # midnight CET
    assert on_the_day - start == 11 * HOUR  # 12:00 CEST is 11 real hours after midnight
    start, end = window_bounds(YESTERDAY, ts(2026, 3, 30, 9, 0, tz=BERLIN), BERLIN)
    assert (start, end) == (ts(2026, 3, 28, 23, 0), ts(2026, 3, 29, 22, 0))
    assert end - start == 23 * HOUR


def test_berlin_fall_back_day_is_25_hours():
    # 2026-10-25: 03:00 CEST falls back to 02:00 CET.
    start, end = window_bounds(YESTERDAY, ts(2026, 10, 26, 9, 0, tz=BERLIN), BERLIN)
    assert (start, end) == (ts(2026, 10, 24, 22, 0), ts(2026, 10, 25, 23, 0))
    assert end - start == 25 * HOUR
    # During the repeated hour it is still the 25th; today began at midnight CEST.
    second_pass = ts(2026, 10, 25, 1, 30)  # 02:30 CET, the second 02:30
    assert window_bounds(TODAY, second_pass, BERLIN)[0] == ts(2026, 10, 24, 22, 0)


def test_day_without_midnight_starts_when_the_clock_jumps():
    # America/Santiago 2026-09-06: 00:00 -04 jumps to 01:00 -03, midnight does not exist.
    start = day_start(date(2026, 9, 6), SANTIAGO)
    assert start == ts(2026, 9, 6, 4, 0)
    assert datetime.fromtimestamp(start, SANTIAGO).hour == 1
    assert datetime.fromtimestamp(start - 1, SANTIAGO).date() == date(2026, 9, 5)
    assert local_midnight(start + 5 * HOUR, SANTIAGO) == start


def test_unknown_window_kind_is_a_clear_error():
    with pytest.raises(ValueError, match="window 'x': unknown kind 'weekly'"):
        window_bounds(Window(name="x", kind="weekly"), 0.0, UTC)  # type: ignore[arg-type]


# ---- one agent ---------------------------------------------------------------------------


def test_window_boundary_cuts_an_interval():
    intervals = (iv(1000, 5000),)
    assert agent_window(intervals, 3000, 7000) == AgentWindow(2000.0, 0.5, 1)
    assert agent_window(intervals, 0, 2000) == AgentWindow(1000.0, 0.5, 1)
    assert agent_window(intervals, 2000, 3000) == AgentWindow(1000.0, 1.0, 1)


def test_agent_without_data_in_window_has_no_series():
    intervals = (iv(1000, 2000), iv(5000, 6000))
    assert agent_window(intervals, 2500, 4500) is None
    assert agent_window((), 0, 10_000) is None


def test_interval_touching_window_edge_does_not_count():
    intervals = (iv(1000, 2000), iv(3000, 4000))
    assert (
        agent_window(intervals, 2000, 3000) is None
    )  # one ends at the start, one starts at the end
    assert agent_window(intervals, 1999, 3001) == AgentWindow(2.0, 2 / 1002, 2)


def test_zero_length_interval_carries_no_time_and_does_not_count():
    assert agent_window((iv(1500, 1500),), 1000, 2000) is None
    assert agent_window((iv(1200, 1300), iv(1500, 1500)), 1000, 2000) == AgentWindow(100.0, 0.1, 1)


def test_empty_window_has_no_data():
    assert agent_window((iv(0, 100),), 50, 50) is None


def test_interval_across_midnight_is_two_entries_and_today_sees_only_its_own():
    evening = iv(ts(2026, 11, 24, 22, 0), ts(2026, 11, 24, 23, 59, 59))
    morning = iv(ts(2026, 11, 25, 0, 0), ts(2026, 11, 25, 1, 0))
    intervals = (evening, morning)
    now = ts(2026, 11, 25, 8, 0)
    today = agent_window(intervals, *window_bounds(TODAY, now, UTC))
    assert today == AgentWindow(HOUR, HOUR / (8 * HOUR), 1)  # evening ends before midnight
    yesterday = agent_window(intervals, *window_bounds(YESTERDAY, now, UTC))
    assert yesterday == AgentWindow(2 * HOUR - 1, (2 * HOUR - 1) / DAY, 1)
    last_24h = agent_window(intervals, *window_bounds(ONE_DAY, now, UTC))
    assert last_24h == AgentWindow(3 * HOUR - 1, (3 * HOUR - 1) / DAY, 2)


def test_ratio_in_a_dst_day_uses_its_real_length():
    # Available all of the 25-hour fall-back day (as Rocket.Chat stores it: until 23:59:59).
    start, end = ts(2026, 10, 24, 22, 0), ts(2026, 10, 25, 23, 0)
    whole = agent_window((iv(start, end - 1),), start, end)
    assert whole == AgentWindow(25 * HOUR - 1, (25 * HOUR - 1) / (25 * HOUR), 1)


# ---- the team ----------------------------------------------------------------------------


def test_team_hand_computed():
    a = (iv(0, 100), iv(200, 300))
    b = (iv(50, 250),)
    # Concurrency: 0-50: 1, 50-100: 2, 100-200: 1, 200-250: 2, 250-300: 1, after 300: 0.
    requirement = [(-100, 150, 1), (150, 400, 2)]
    got = team_windows([a, b], [(0, 300), (100, 200), (-50, 400), (400, 500)], requirement)
    assert got == [
        TeamWindow(2, 1.0, 2.0, 400 / 300, 0.0, 100.0),  # short 150-200 and 250-300
        TeamWindow(1, 1.0, 1.0, 1.0, 0.0, 50.0),  # b only; short 150-200
        TeamWindow(2, 0.0, 2.0, 400 / 450, 150.0, 250.0),  # nobody -50-0 and 300-400
        TeamWindow(0, 0.0, 0.0, 0.0, 100.0, 0.0),  # nobody, but no segment: 0 required
    ]


def test_understaffed_counts_short_time_unstaffed_only_empty_time():
    # Two agents required all day; one agent works 08:00-16:00, nobody else.
    one = (iv(8 * HOUR, 16 * HOUR),)
    [team] = team_windows([one], [(0, DAY)], [(0, DAY, 2)])
    assert team.unstaffed_seconds == 16 * HOUR
    assert team.understaffed_seconds == DAY
    assert (team.min, team.max, team.avg) == (0.0, 1.0, 1 / 3)


def test_without_schedule_understaffed_is_none():
    [team] = team_windows([(iv(0, 10),)], [(0, 10)], None)
    assert team == TeamWindow(1, 1.0, 1.0, 1.0, 0.0, None)


def test_agent_without_data_counts_as_unavailable():
    [team] = team_windows([(iv(0, 50),), ()], [(0, 100)])
    assert team == TeamWindow(1, 0.0, 1.0, 0.5, 50.0, None)


def test_no_agents_at_all():
    assert team_windows([], [(0, 100)], [(0, 100, 1)]) == [
        TeamWindow(0, 0.0, 0.0, 0.0, 100.0, 100.0)
    ]
    assert team_windows([], []) == []


def test_handover_at_the_same_instant_is_no_gap_and_no_overlap():
    [team] = team_windows([(iv(0, 100),), (iv(100, 200),)], [(0, 200)])
    assert team == TeamWindow(2, 1.0, 1.0, 1.0, 0.0, None)


def test_edge_touching_and_zero_length_intervals_do_not_make_agents_active():
    agents = [(iv(0, 100),), (iv(300, 400),), (iv(150, 150),)]
    [team] = team_windows(agents, [(100, 300)])
    assert team == TeamWindow(0, 0.0, 0.0, 0.0, 200.0, None)


def test_empty_window_is_all_zero():
    [team] = team_windows([(iv(0, 100),)], [(50, 50)], [(0, 100, 1)])
    assert team == TeamWindow(0, 0.0, 0.0, 0.0, 0.0, 0.0)


def test_real_timestamps_with_milliseconds():
    base = ts(2026, 11, 25, 9, 0)
    a = (iv(base + 0.125, base + 600.5),)
    b = (iv(base + 300.25, base + 900.75),)
    [team] = team_windows([a, b], [(base, base + HOUR)], [(base, base + HOUR, 1)])
    assert team.active == 2
    assert (team.min, team.max) == (0.0, 2.0)
    assert team.unstaffed_seconds == pytest.approx(0.125 + (HOUR - 900.75))
    assert team.understaffed_seconds == team.unstaffed_seconds
    assert team.avg == pytest.approx((600.375 + 600.5) / HOUR)


# ---- midnight splits and the team --------------------------------------------------------


def test_bridging_midnight_splits_removes_the_fake_unstaffed_second():
    evening = iv(ts(2026, 11, 24, 22, 0, tz=BERLIN), ts(2026, 11, 24, 23, 59, 59, tz=BERLIN))
    morning = iv(ts(2026, 11, 25, 0, 0, tz=BERLIN), ts(2026, 11, 25, 2, 0, tz=BERLIN))
    window = [(evening.start, morning.end)]
    [raw] = team_windows([(evening, morning)], window)
    assert (raw.min, raw.unstaffed_seconds) == (0.0, 1.0)
    bridged = bridge_midnight_splits((evening, morning), BERLIN)
    assert bridged == (iv(evening.start, morning.end),)
    [team] = team_windows([bridged], window)
    assert (team.min, team.unstaffed_seconds) == (1.0, 0.0)


def test_bridging_leaves_other_gaps_and_other_zones_midnight_alone():
    a = iv(ts(2026, 11, 25, 9, 0), ts(2026, 11, 25, 9, 59, 59))
    b = iv(ts(2026, 11, 25, 10, 0), ts(2026, 11, 25, 11, 0))
    assert bridge_midnight_splits((a, b), UTC) == (a, b)  # a 1 s gap, but not at midnight
    evening = iv(ts(2026, 11, 24, 22, 0), ts(2026, 11, 24, 23, 59, 59))
    morning = iv(ts(2026, 11, 25, 0, 0), ts(2026, 11, 25, 2, 0))
    assert bridge_midnight_splits((evening, morning), UTC) == (iv(evening.start, morning.end),)
    assert bridge_midnight_splits((evening, morning), KOLKATA) == (evening, morning)


def test_bridging_joins_a_session_over_several_midnights():
    pieces = (
        iv(ts(2026, 11, 23, 22, 0), ts(2026, 11, 23, 23, 59, 59)),
        iv(ts(2026, 11, 24, 0, 0), ts(2026, 11, 24, 23, 59, 59)),
        iv(ts(2026, 11, 25, 0, 0), ts(2026, 11, 25, 3, 0)),
        iv(ts(2026, 11, 25, 5, 0), ts(2026, 11, 25, 6, 0)),
    )
    assert bridge_midnight_splits(pieces, UTC) == (
        iv(ts(2026, 11, 23, 22, 0), ts(2026, 11, 25, 3, 0)),
        pieces[3],
    )


@pytest.mark.parametrize(
    "day, before",
    [
        (date(2026, 9, 6), [ts(2026, 9, 6, 3, 59, 59)]),  # no midnight: the day starts at 01:00
        # The clock fell back at midnight, 23:00-23:59:59 happened twice: either one.
        (date(2026, 4, 5), [ts(2026, 4, 5, 2, 59, 59), ts(2026, 4, 5, 3, 59, 59)]),
    ],
)
def test_bridging_where_dst_changes_at_midnight(day, before):
    start = day_start(day, SANTIAGO)
    for end in before:
        evening = iv(end - HOUR, end)
        morning = iv(start, start + HOUR)
        assert bridge_midnight_splits((evening, morning), SANTIAGO) == (
            iv(end - HOUR, start + HOUR),
        )


# ---- properties and a slow reference -----------------------------------------------------


def slow_agent(intervals, start, end):
    """Obviously correct: clip every interval, keep the positive parts."""
    parts = [min(i.end, end) - max(i.start, start) for i in intervals]
    parts = [p for p in parts if p > 0]
    if end <= start or not parts:
        return None
    return sum(parts), len(parts)


def slow_team(agents, start, end, requirement):
    """Obviously correct: evaluate every piece between consecutive breakpoints at its middle."""
    if end <= start:
        return TeamWindow(0, 0.0, 0.0, 0.0, 0.0, None if requirement is None else 0.0)
    points = {start, end}
    for intervals in agents:
        for i in intervals:
            points.update(x for x in (i.start, i.end) if start < x < end)
    for s, e, _ in requirement or ():
        points.update(x for x in (s, e) if start < x < end)
    levels, area, nobody, short = [], 0.0, 0.0, 0.0
    for a, b in pairwise(sorted(points)):
        mid = (a + b) / 2
        level = sum(any(i.start <= mid < i.end for i in intervals) for intervals in agents)
        required = next((n for s, e, n in requirement or () if s <= mid < e), 0)
        levels.append(level)
        area += level * (b - a)
        nobody += (b - a) if level == 0 else 0.0
        short += (b - a) if level < required else 0.0
    active = sum(slow_agent(intervals, start, end) is not None for intervals in agents)
    return TeamWindow(
        active,
        float(min(levels)),
        float(max(levels)),
        area / (end - start),
        nobody,
        None if requirement is None else short,
    )


def assert_team_close(got: TeamWindow, want: TeamWindow, tol: float = 1e-5):
    assert got.active == want.active
    assert (got.min, got.max) == (want.min, want.max)
    assert got.avg == pytest.approx(want.avg, abs=tol)
    assert got.unstaffed_seconds == pytest.approx(want.unstaffed_seconds, abs=tol)
    if want.understaffed_seconds is None:
        assert got.understaffed_seconds is None
    else:
        assert got.understaffed_seconds == pytest.approx(want.understaffed_seconds, abs=tol)


def raw_intervals(times):
    lengths = st.integers(0, 300) | st.just(0)  # zero-length entries happen: test them often
    pair = st.tuples(times, lengths).map(lambda p: (p[0], p[0] + p[1]))
    return st.lists(pair, max_size=8)


SECONDS = st.integers(-200, 1200)
agents_int = st.lists(raw_intervals(SECONDS), max_size=6)
windows_int = st.lists(st.tuples(SECONDS, st.integers(0, 1000)), min_size=1, max_size=4)


@st.composite
def requirements(draw, lo: float, hi: float):
    cuts = sorted(set(draw(st.lists(st.integers(int(lo), int(hi)), max_size=6))) | {lo, hi})
    return [(a, b, draw(st.integers(0, 3))) for a, b in pairwise(cuts)]


def merged_agents(raw, scale=1.0, offset=0.0):
    return [
        merge_intervals(Interval(offset + s * scale, offset + e * scale) for s, e in agent)[0]
        for agent in raw
    ]


@settings(max_examples=300, deadline=None)
@given(raw=agents_int, windows=windows_int, data=st.data())
def test_team_sweep_matches_slow_reference(raw, windows, data):
    agents = merged_agents(raw)
    bounds = [(float(s), float(s + n)) for s, n in windows]
    lo, hi = min(b[0] for b in bounds), max(b[1] for b in bounds)
    requirement = data.draw(st.none() | requirements(lo, hi))
    got = team_windows(agents, bounds, requirement)
    for (start, end), team in zip(bounds, got, strict=True):
        assert team == slow_team(agents, start, end, requirement)  # integers: exact


@settings(max_examples=150, deadline=None)
@given(
    raw=st.lists(raw_intervals(st.integers(0, 10_000)), max_size=5),
    windows=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 8000)), min_size=1),
    data=st.data(),
)
def test_team_sweep_matches_reference_on_real_millisecond_timestamps(raw, windows, data):
    # Rocket.Chat-like instants: unix seconds in 2026 with milliseconds.
    base = ts(2026, 11, 25)
    agents = merged_agents(raw, scale=0.001 * 37, offset=base)
    bounds = [(base + s * 0.037, base + (s + n) * 0.037) for s, n in windows]
    lo, hi = min(b[0] for b in bounds), max(b[1] for b in bounds)
    requirement = data.draw(st.none() | st.just([(lo, hi, 1)]))
    got = team_windows(agents, bounds, requirement)
    for (start, end), team in zip(bounds, got, strict=True):
        assert_team_close(team, slow_team(agents, start, end, requirement))


@settings(max_examples=300, deadline=None)
@given(raw=agents_int, windows=windows_int)
def test_team_invariants(raw, windows):
    agents = merged_agents(raw)
    bounds = [(float(s), float(s + n)) for s, n in windows]
    lo, hi = min(b[0] for b in bounds), max(b[1] for b in bounds)
    staffed = team_windows(agents, bounds, [(lo, hi, 1)])
    for (start, end), team in zip(bounds, staffed, strict=True):
        length = end - start
        assert 0 <= team.min <= team.avg <= team.max <= len(agents)
        assert 0 <= team.unstaffed_seconds <= length
        assert team.unstaffed_seconds <= team.understaffed_seconds <= length
        assert team.active <= len(agents)
        if team.active == 0:
            assert team.max == 0 and team.unstaffed_seconds == length


@settings(max_examples=300, deadline=None)
@given(raw=agents_int.map(lambda a: a[0] if a else []), start=SECONDS, n=st.integers(0, 1000))
def test_agent_window_matches_reference_and_stays_in_range(raw, start, n):
    [intervals] = merged_agents([raw])
    end = float(start + n)
    got = agent_window(intervals, float(start), end)
    want = slow_agent(intervals, start, end)
    if want is None:
        assert got is None
        return
    assert got is not None
    assert (got.seconds, got.intervals) == want
    assert 0 < got.seconds <= n
    assert 0 < got.ratio <= 1
    assert got.ratio == pytest.approx(got.seconds / n)


@given(raw=st.lists(st.tuples(st.floats(-1e12, 1e12), st.floats(0, 1e9)), max_size=20))
def test_merge_is_idempotent_and_never_raises(raw):
    entries = [Interval(s, s + n) for s, n in raw]
    merged, away = merge_intervals(entries)
    assert len(merged) + away == len(entries)
    assert merge_intervals(merged) == (merged, 0)
    assert all(a.end < b.start for a, b in pairwise(merged))
    # Every entry is covered by exactly the merged interval that contains its start.
    for e in entries:
        assert any(m.start <= e.start and e.end <= m.end for m in merged)


@given(
    raw=st.lists(st.tuples(st.floats(0, 4e9), st.floats(0, 1e6)), max_size=10),
    start=st.floats(0, 4e9),
    n=st.floats(0, 1e7),
)
def test_random_float_intervals_never_raise_and_stay_in_range(raw, start, n):
    intervals, _ = merge_intervals(Interval(s, s + d) for s, d in raw)
    end = start + n
    aw = agent_window(intervals, start, end)
    if aw is not None:
        assert 0 <= aw.seconds <= end - start
        assert 0 <= aw.ratio <= 1
    [team] = team_windows([intervals], [(start, end)], [(start, end, 1)])
    assert 0 <= team.min <= team.avg <= team.max <= 1
    assert 0 <= team.unstaffed_seconds <= team.understaffed_seconds <= max(end - start, 0) + 1e-3


@settings(max_examples=50, deadline=None)
@given(day=st.dates(date(2000, 1, 1), date(2037, 12, 31)), zone=st.sampled_from([BERLIN, KOLKATA]))
def test_yesterday_is_one_local_day(day, zone):
    now = day_start(day, zone) + 5 * HOUR
    start, end = window_bounds(YESTERDAY, now, zone)
    assert datetime.fromtimestamp(start, zone).date() == day - timedelta(days=1)
    assert datetime.fromtimestamp(end, zone).date() == day
    assert datetime.fromtimestamp(end - 1, zone).date() == day - timedelta(days=1)
    assert end - start in (23 * HOUR, DAY, 25 * HOUR)
