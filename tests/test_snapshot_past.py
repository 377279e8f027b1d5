"""PastDays (past days kept between polls) gives exactly the snapshot computed from scratch."""

from __future__ import annotations

import re
from datetime import date, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from exporter.availability import clip
from exporter.config.model import AgentFilter, Staffing, StaffingRule, Window
from exporter.intervals import merge_intervals
from exporter.localtime import day_start
from exporter.model import AgentDay, AgentLive, DayHistory, Interval, LiveStatus
from exporter.pastdays import PastDays, with_open_part
from exporter.sessions import Streak, with_open_sessions
from exporter.snapshot import SnapshotInputs, build_snapshot

ZONES = [ZoneInfo(z) for z in ("UTC", "Europe/Berlin", "Asia/Kolkata", "America/Santiago")]
WINDOWS = (
    Window("1h", "duration", 3600),
    Window("8h", "duration", 8 * 3600),
    Window("24h", "duration", 86400),
    Window("7d", "duration", 7 * 86400),
    Window("today", "today"),
    Window("yesterday", "yesterday"),
)
STAFFING = Staffing(
    timezone="Europe/Berlin",
    default=1,
    rules=(StaffingRule(frozenset(range(5)), time(8), time(18), 3),),
)
AGENTS = ("ana", "bo", "cy", "bot.x")
TODAY = date(2026, 3, 30)  # Berlin changed to summer time on the 29th, Santiago on 4 April


def day_history(day: date, tz: ZoneInfo, sessions: dict[str, list[tuple[int, int]]]):
    """Sessions as (start, end) seconds into the local day; an end of -1 means 23:59:59."""
    midnight = day_start(day, tz)
    last = day_start(day + timedelta(days=1), tz) - 1
    agents = {}
    for name, spans in sessions.items():
        ivs, t = [], midnight
        for gap, length in spans:
            start = t + gap
            end = last if length < 0 else min(start + length, last)
            if start > last:
                break
            ivs.append(Interval(start, end))
            t = end + 1
        agents[name] = AgentDay(name, tuple(ivs), None)
    return DayHistory(day=day, agents=agents, total=len(agents))


spans = st.lists(
    st.tuples(st.sampled_from([0, 0, 1, 60, 3600, 30000]), st.sampled_from([-1, 0, 1, 900, 14000])),
    max_size=5,
)
day_sessions = st.dictionaries(st.sampled_from(AGENTS), spans, max_size=4)


def inputs(tz, days, now, streaks, staffing) -> SnapshotInputs:
    live = LiveStatus(agents=tuple(AgentLive(n, "online", n in streaks) for n in AGENTS), counts={})
    return SnapshotInputs(
        server="s",
        tz=tz,
        days=days,
        live=live,
        streaks=streaks,
        windows=WINDOWS,
        agent_filter=AgentFilter(re.compile(".*"), re.compile(r"bot\..*")),
        staffing=staffing,
        include_open_sessions=True,
    )


@settings(max_examples=150, deadline=None)
@given(
    tz=st.sampled_from(ZONES),
    history=st.lists(day_sessions, min_size=9, max_size=9),
    into_today=st.sampled_from([0, 1, 1800, 7199, 7200, 30000, 86399]),
    streak_ages=st.dictionaries(st.sampled_from(AGENTS), st.sampled_from([0, 60, 9000, 90000])),
    staffed=st.booleans(),
)
def test_past_days_kept_between_polls_give_the_same_snapshot(
    tz, history, into_today, streak_ages, staffed
):
    past = PastDays()
    staffing = STAFFING if staffed else None
    # Two polls on two days with the same memo: day one's past block must not leak into two.
    for offset in (1, 0):
        today = TODAY - timedelta(days=offset)
        days = [
            day_history(today - timedelta(days=8 - i), tz, history[i + offset - 1] if i else {})
            for i in range(9 - offset)
        ]
        midnight = day_start(today, tz)
        now = min(midnight + into_today, day_start(today + timedelta(days=1), tz) - 1)
        # Today's intervals end by now (Rocket.Chat only records closed sessions).
        days[-1] = DayHistory(
            day=today,
            agents={
                n: AgentDay(n, tuple(iv for iv in a.intervals if iv.end <= now), None)
                for n, a in days[-1].agents.items()
            },
            total=days[-1].total,
        )
        streaks = {n: Streak(now - age, now) for n, age in streak_ages.items()}
        inp = inputs(tz, days, now, streaks, staffing)
        kept = build_snapshot(inp, now, past)
        assert kept == build_snapshot(inp, now)
        assert kept == build_snapshot(inp, now, past)  # the same block again, reused
    # Windows start inside the cached days: the kept path must have been the one taken.
    assert past.parts(inp, [(now - 3600, now), (now - 7 * 86400, now)], now) is not None


def test_split_path_is_skipped_where_it_does_not_apply():
    tz = ZONES[0]
    days = [day_history(TODAY - timedelta(days=1), tz, {"ana": [(0, 100)]})]
    now = day_start(TODAY, tz) + 3600
    inp = inputs(tz, days, now, {}, None)
    past = PastDays()
    # A window reaching before the cached days cannot be answered from them.
    assert past.parts(inp, [(now - 3 * 86400, now)], now) is None
    assert past.parts(inp, [(now - 3600, now)], now) is not None
    # Nothing in the past: nothing to keep.
    today_only = inputs(tz, [day_history(TODAY, tz, {"ana": [(0, 100)]})], now, {}, None)
    assert past.parts(today_only, [(now - 3600, now)], now) is None
    assert build_snapshot(inp, now, past) == build_snapshot(inp, now)


class _Client:
    """A Rocket.Chat client stand-in: one session a day for one agent, nobody live."""

    def __init__(self, server, *, on_request=None, stop=None, clock=None, **_):
        self.min_poll_interval = 0.0
        self.clock_skew = 0.0

    def fetch_history_day(self, day: date) -> DayHistory:
        return day_history(day, ZONES[0], {"ana": [(3600, 600)]})

    def fetch_live_status(self) -> LiveStatus:
        return LiveStatus(agents=(), counts={})

    def fetch_info(self) -> dict:
        return {}

    def close(self) -> None:
        pass


def _poller(clock):
    import threading

    from exporter.config import parse_config
    from exporter.poller import ServerPoller
    from exporter.publisher import Publisher

    config = parse_config(
        {
            "windows": ["1h", "7d"],
            "servers": [
                {"name": "m", "url": "http://127.0.0.1:1", "user_id": "u", "auth_token": "t"}
            ],
        }
    )
    publisher = Publisher(["m"], config.max_staleness)
    return ServerPoller(
        config.servers[0],
        config,
        publisher,
        stop=threading.Event(),
        clock=lambda: clock[0],
        client_factory=_Client,
    )


def test_large_past_days_are_exempted_from_gc_scans_once_per_rebuild(monkeypatch):
    import gc

    import exporter.poller

    exempt = exporter.poller._exempt_long_lived
    calls = []
    monkeypatch.setattr(exporter.poller, "_exempt_long_lived", lambda: calls.append(exempt()))
    monkeypatch.setattr(exporter.poller, "EXEMPT_FROM_GC_INTERVALS", 1)
    clock = [day_start(TODAY, ZONES[0]) + 12 * 3600]
    poller = _poller(clock)
    gc.unfreeze()
    try:
        assert poller.run_poll()
        assert len(calls) == 1 and gc.get_freeze_count() > 0  # past days built: exempted
        clock[0] += 60
        assert poller.run_poll()
        assert len(calls) == 1  # the same past days: nothing more to do
        clock[0] += 86400
        assert poller.run_poll()
        assert len(calls) == 2  # a new day: new past days
    finally:
        gc.unfreeze()


def test_small_past_days_are_left_to_the_collector(monkeypatch):
    import exporter.poller

    calls = []
    monkeypatch.setattr(exporter.poller, "_exempt_long_lived", lambda: calls.append(1))
    clock = [day_start(TODAY, ZONES[0]) + 12 * 3600]
    poller = _poller(clock)
    assert poller.run_poll()
    assert calls == []


@settings(max_examples=40, deadline=None)
@given(
    raw=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 5000)), min_size=1, max_size=3000),
    starts=st.lists(st.integers(-10, 10**6), min_size=1, max_size=20),
)
def test_kept_concurrency_answers_like_a_fresh_one(raw, starts):
    from exporter.availability import Concurrency
    from exporter.intervals import merge_intervals

    base = 1.7e9
    agents = [
        merge_intervals(Interval(base + s, base + s + n) for s, n in raw[k::7])[0] for k in range(7)
    ]
    end = base + 10**6 + 5000
    kept = Concurrency(agents, base - 10, end, [(base - 10, end, 3)], reused=True)
    fresh = Concurrency(agents, base - 10, end, [(base - 10, end, 3)])
    for s in starts:
        assert kept.span(base + s, end) == fresh.span(base + s, end)


@settings(max_examples=120, deadline=None)
@given(
    tz=st.sampled_from(ZONES),
    history=st.lists(day_sessions, min_size=9, max_size=9),
    fraction=st.sampled_from([0.0, 0.001, 0.123, 0.7]),
    start_into=st.sampled_from([7300, 30000, 50000]),
    steps=st.lists(st.sampled_from([0.25, 60.0, 61.7, 600.0, 3600.0]), min_size=2, max_size=12),
    streak_ages=st.dictionaries(st.sampled_from(AGENTS), st.sampled_from([0, 60, 9000, 90000])),
)
def test_kept_figures_equal_fresh_ones_as_window_edges_slide(
    tz, history, fraction, start_into, steps, streak_ages
):
    """Polls on the same cached days, `now` moving on: the figures kept between polls (edges
    inside an interval, open sessions added on top) are the floats a fresh memo computes."""
    days = [
        day_history(TODAY - timedelta(days=8 - i), tz, history[i] if i else {}) for i in range(9)
    ]
    # Off whole seconds, as Rocket.Chat's milliseconds are: float sums must agree bit for bit.
    days = [
        DayHistory(
            day=d.day,
            agents={
                n: AgentDay(
                    n, tuple(Interval(iv.start + fraction, iv.end) for iv in a.intervals), None
                )
                for n, a in d.agents.items()
            },
            total=d.total,
        )
        for d in days
    ]
    midnight = day_start(TODAY, tz)
    now = midnight + start_into + fraction
    today = days[-1]
    past = PastDays()
    for step in steps:
        now = min(now + step, day_start(TODAY + timedelta(days=1), tz) - 1)
        closed = DayHistory(
            day=TODAY,
            agents={
                n: AgentDay(n, tuple(iv for iv in a.intervals if iv.end <= now), None)
                for n, a in today.agents.items()
            },
            total=today.total,
        )
        # Same objects while nothing closed since the last poll, as the parse memo keeps them.
        if days[-1].agents.keys() != closed.agents.keys() or any(
            days[-1].agents[n].intervals != a.intervals for n, a in closed.agents.items()
        ):
            days[-1] = closed
        streaks = {n: Streak(now - age, now) for n, age in streak_ages.items()}
        inp = inputs(tz, days, now, streaks, None)
        assert build_snapshot(inp, now, past) == build_snapshot(inp, now, PastDays())
        # That kept figures are really exercised here (not only fresh ones) is shown by
        # test_incremental's reuse count; per example it depends on the drawn edges.
        event("kept figures" if past.reused else "no kept figures")


def test_an_open_session_touching_the_last_closed_interval_counts_once():
    closed = (Interval(0.0, 10.0), Interval(20.0, 30.0))
    open_ = Interval(30.0, 50.0)
    seconds, count = clip(closed, 25.0, 40.0)
    assert with_open_part(seconds, count, closed, open_, 25.0, 40.0) == (15.0, 1)
    # The window starts where the closed interval ends: only the open half counts.
    assert with_open_part(*clip(closed, 30.0, 40.0), closed, open_, 30.0, 40.0) == (10.0, 1)
    # A zero-length last interval was never counted, so nothing is taken off.
    point = (Interval(0.0, 10.0), Interval(30.0, 30.0))
    assert with_open_part(*clip(point, 5.0, 40.0), point, open_, 5.0, 40.0) == (15.0, 2)


_instants = st.integers(0, 200).map(float)


@given(
    st.lists(st.tuples(_instants, st.integers(0, 20).map(float)), max_size=6),
    st.integers(0, 30).map(float),
    st.integers(0, 60).map(float),
    _instants,
    st.integers(1, 120).map(float),
)
def test_open_part_equals_clipping_the_merged_intervals(raw, gap, length, start, width):
    closed, _ = merge_intervals(Interval(s, s + d) for s, d in raw)
    begins = (closed[-1].end if closed else 0.0) + gap
    open_ = Interval(begins, begins + length)
    end = start + width
    seconds, count = with_open_part(*clip(closed, start, end), closed, open_, start, end)
    want_seconds, want_count = clip(with_open_sessions(closed, open_), start, end)
    assert count == want_count
    assert seconds == pytest.approx(want_seconds, abs=1e-9)
