"""The staffing schedule: rules in local wall-clock time, first match wins, holidays, DST."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.config.model import Staffing, StaffingRule
from exporter.localtime import day_start
from exporter.staffing import required_at, requirement_segments

UTC = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
HOUR = 3600.0
WEEKDAYS = frozenset(range(5))
EVERY_DAY = frozenset(range(7))


def ts(*args, tz=UTC) -> float:
    return datetime(*args, tzinfo=tz).timestamp()


def rule(days, start, end, agents) -> StaffingRule:
    return StaffingRule(days=frozenset(days), start=start, end=end, agents=agents)


OFFICE = Staffing(
    timezone="Europe/Berlin",
    default=1,
    rules=(
        rule(WEEKDAYS, time(12), time(13), 2),  # lunch: listed first, so it wins over 08-18
        rule(WEEKDAYS, time(8), time(18), 3),
        rule({5}, time(10), time(14), 2),  # Saturday
    ),
    holidays=frozenset({date(2026, 12, 25)}),
)


def local(*args) -> float:
    return ts(*args, tz=BERLIN)


# ---- required_at -------------------------------------------------------------------------


def test_rules_by_weekday_and_default():
    assert required_at(OFFICE, local(2026, 11, 25, 9, 0)) == 3  # Wednesday
    assert required_at(OFFICE, local(2026, 11, 25, 7, 59, 59)) == 1
    assert required_at(OFFICE, local(2026, 11, 28, 11, 0)) == 2  # Saturday
    assert required_at(OFFICE, local(2026, 11, 29, 11, 0)) == 1  # Sunday: no rule


def test_first_matching_rule_wins():
    assert required_at(OFFICE, local(2026, 11, 25, 12, 30)) == 2
    later_lunch = Staffing("Europe/Berlin", 1, (OFFICE.rules[1], OFFICE.rules[0]))
    assert required_at(later_lunch, local(2026, 11, 25, 12, 30)) == 3


def test_start_inclusive_end_exclusive():
    assert required_at(OFFICE, local(2026, 11, 25, 8, 0)) == 3
    assert required_at(OFFICE, local(2026, 11, 25, 18, 0)) == 1
    assert required_at(OFFICE, local(2026, 11, 25, 17, 59, 59)) == 3


def test_holiday_uses_the_default_all_local_day():
    assert required_at(OFFICE, local(2026, 12, 25, 9, 0)) == 1
    assert required_at(OFFICE, local(2026, 12, 25, 0, 0)) == 1
    assert required_at(OFFICE, local(2026, 12, 24, 9, 0)) == 3
    assert required_at(OFFICE, local(2026, 12, 28, 9, 0)) == 3
    start, end = local(2026, 12, 25), local(2026, 12, 26)
    assert requirement_segments(OFFICE, start, end) == [(start, end, 1)]


def test_rules_follow_the_staffing_zone_not_utc():
    kolkata = Staffing("Asia/Kolkata", 0, (rule(EVERY_DAY, time(9), time(17, 30), 4),))
    # 09:00-17:30 IST is 03:30-12:00 UTC.
    assert required_at(kolkata, ts(2026, 11, 25, 3, 29, 59)) == 0
    assert required_at(kolkata, ts(2026, 11, 25, 3, 30)) == 4
    assert required_at(kolkata, ts(2026, 11, 25, 11, 59, 59)) == 4
    assert required_at(kolkata, ts(2026, 11, 25, 12, 0)) == 0
    assert requirement_segments(kolkata, ts(2026, 11, 25), ts(2026, 11, 26)) == [
        (ts(2026, 11, 25), ts(2026, 11, 25, 3, 30), 0),
        (ts(2026, 11, 25, 3, 30), ts(2026, 11, 25, 12, 0), 4),
        (ts(2026, 11, 25, 12, 0), ts(2026, 11, 26), 0),
    ]


def test_until_midnight_rule():
    late = Staffing("Europe/Berlin", 0, (rule(EVERY_DAY, time(20), time.max, 2),))
    assert required_at(late, local(2026, 11, 25, 23, 59, 59)) == 2
    assert required_at(late, local(2026, 11, 26, 0, 0)) == 0
    assert requirement_segments(late, local(2026, 11, 25), local(2026, 11, 26)) == [
        (local(2026, 11, 25), local(2026, 11, 25, 20), 0),
        (local(2026, 11, 25, 20), local(2026, 11, 26), 2),
    ]


# ---- DST ---------------------------------------------------------------------------------

ALL_DAY_RULES = Staffing(
    "Europe/Berlin",
    0,
    (
        rule(EVERY_DAY, time(2, 30), time(4), 5),
        rule(EVERY_DAY, time(2), time(2, 45), 4),
        rule(EVERY_DAY, time(8), time(18), 3),
    ),
)


def test_office_hours_stay_local_on_dst_days():
    # Winter (CET, +1) 08:00-18:00 is 07:00-17:00 UTC; summer (CEST, +2) 06:00-16:00 UTC.
    spring = requirement_segments(OFFICE, local(2026, 3, 30), local(2026, 3, 31))  # Monday
    assert (ts(2026, 3, 30, 6, 0), ts(2026, 3, 30, 10, 0), 3) in spring
    autumn = requirement_segments(OFFICE, local(2026, 10, 26), local(2026, 10, 27))  # Monday
    assert (ts(2026, 10, 26, 7, 0), ts(2026, 10, 26, 11, 0), 3) in autumn
    # The change days themselves are Sundays; a rule for every day shows them.
    assert (ts(2026, 3, 29, 6, 0), ts(2026, 3, 29, 16, 0), 3) in requirement_segments(
        ALL_DAY_RULES, local(2026, 3, 29), local(2026, 3, 30)
    )
    assert (ts(2026, 10, 25, 7, 0), ts(2026, 10, 25, 17, 0), 3) in requirement_segments(
        ALL_DAY_RULES, local(2026, 10, 25), local(2026, 10, 26)
    )


def test_spring_forward_skipped_local_times():
    # 2026-03-29 01:00 UTC: 02:00 CET becomes 03:00 CEST. 02:00-02:59 never shows on the clock.
    change = ts(2026, 3, 29, 1, 0)
    assert required_at(ALL_DAY_RULES, change - 1) == 0  # 01:59:59 CET
    assert required_at(ALL_DAY_RULES, change) == 5  # 03:00 CEST, inside 02:30-04:00
    segments = requirement_segments(ALL_DAY_RULES, local(2026, 3, 29), local(2026, 3, 30))
    assert segments[:3] == [
        (local(2026, 3, 29), change, 0),
        (change, ts(2026, 3, 29, 2, 0), 5),  # 03:00-04:00 CEST; 02:00-02:45 never applies
        (ts(2026, 3, 29, 2, 0), ts(2026, 3, 29, 6, 0), 0),
    ]
    assert segments[-1][1] - segments[0][0] == 23 * HOUR


def test_fall_back_repeated_local_times_apply_twice():
    # 2026-10-25 01:00 UTC: 03:00 CEST becomes 02:00 CET; 02:00-02:59 happens twice.
    s = [
        (ts(2026, 10, 25, 0, 0), ts(2026, 10, 25, 0, 30), 4),  # 02:00-02:30 CEST
        (ts(2026, 10, 25, 0, 30), ts(2026, 10, 25, 1, 0), 5),  # 02:30-03:00 CEST
        (ts(2026, 10, 25, 1, 0), ts(2026, 10, 25, 1, 30), 4),  # 02:00-02:30 CET
        (ts(2026, 10, 25, 1, 30), ts(2026, 10, 25, 3, 0), 5),  # 02:30-04:00 CET
    ]
    segments = requirement_segments(ALL_DAY_RULES, local(2026, 10, 25), local(2026, 10, 26))
    assert segments[1:5] == s
    assert segments[-1][1] - segments[0][0] == 25 * HOUR
    for start, end, n in s:
        assert required_at(ALL_DAY_RULES, start) == n
        assert required_at(ALL_DAY_RULES, end - 1) == n


# ---- requirement_segments shape ----------------------------------------------------------


def test_segments_cover_the_range_exactly_and_merge_equal_neighbours():
    start, end = local(2026, 11, 23, 10, 17), local(2026, 11, 30, 9, 5)  # Mon..next Mon
    segments = requirement_segments(OFFICE, start, end)
    assert segments[0][0] == start
    assert segments[-1][1] == end
    for (_, e1, n1), (s2, _, n2) in pairwise(segments):
        assert e1 == s2
        assert n1 != n2
    # Friday 18:00 to Saturday 10:00 is one default segment across midnight.
    assert (local(2026, 11, 27, 18), local(2026, 11, 28, 10), 1) in segments


def test_empty_range():
    assert requirement_segments(OFFICE, 100.0, 100.0) == []
    assert requirement_segments(OFFICE, 100.0, 50.0) == []


def test_no_rules_is_the_default_everywhere():
    flat = Staffing("Europe/Berlin", 2)
    assert requirement_segments(flat, local(2026, 3, 28), local(2026, 3, 31)) == [
        (local(2026, 3, 28), local(2026, 3, 31), 2)
    ]


# ---- property: the segments say what required_at says, in awkward zones ------------------

ZONES = [
    "Europe/Berlin",
    "Asia/Kolkata",  # +05:30
    "America/Santiago",  # DST changes at midnight: some days have no 00:00
    "Australia/Lord_Howe",  # a 30-minute DST shift
    "America/St_Johns",  # -03:30 / -02:30
]
minutes = st.integers(0, 24 * 60 - 1).map(lambda m: time(m // 60, m % 60))


def change_days(zone: str, year: int = 2026) -> list[date]:
    """The local days of `year` that are not 24 hours long in `zone`."""
    tz, day, out = ZoneInfo(zone), date(year, 1, 1), []
    while day.year == year:
        if day_start(day + timedelta(days=1), tz) - day_start(day, tz) != 86400:
            out.append(day)
        day += timedelta(days=1)
    return out


CHANGES = [(zone, day) for zone in ZONES for day in change_days(zone)] + [
    ("Asia/Kolkata", date(2026, 11, 24))
]


@st.composite
def schedules(draw, zone: str, days: list[date]):
    rules = []
    for _ in range(draw(st.integers(0, 4))):
        a, b = sorted(draw(st.lists(minutes, min_size=2, max_size=2, unique=True)))
        end = time.max if draw(st.booleans()) and b.hour >= 20 else b
        weekdays = draw(st.frozensets(st.integers(0, 6), min_size=1))
        rules.append(StaffingRule(weekdays, a, end, draw(st.integers(0, 5))))
    return Staffing(
        timezone=zone,
        default=draw(st.integers(0, 2)),
        rules=tuple(rules),
        holidays=draw(st.frozensets(st.sampled_from(days), max_size=1)),
    )


@settings(max_examples=150, deadline=None)
@given(change=st.sampled_from(CHANGES), data=st.data())
def test_segments_agree_with_required_at(change, data):
    # Every example spans a DST change (or a plain day far from UTC).
    zone, change_day = change
    tz = ZoneInfo(zone)
    first_day = change_day - timedelta(days=data.draw(st.integers(0, 1)))
    nearby = [first_day + timedelta(days=k) for k in range(4)]
    staffing = data.draw(schedules(zone, nearby))
    start = day_start(first_day, tz) + data.draw(st.integers(0, 86400))
    end = max(start + 1, day_start(change_day + timedelta(days=1), tz)) + data.draw(
        st.integers(0, 86400)
    )
    segments = requirement_segments(staffing, start, end)
    assert segments[0][0] == start and segments[-1][1] == end
    assert all(e1 == s2 for (_, e1, _), (s2, _, _) in pairwise(segments))
    for s, e, n in segments:
        assert s < e
        assert required_at(staffing, s) == n
        assert required_at(staffing, e - 0.001) == n
        assert required_at(staffing, (s + e) / 2) == n
    # Whole milliseconds: datetime resolves microseconds, so an instant a few nanoseconds
    # before a boundary would be read as the boundary itself.
    offsets = st.lists(st.integers(0, int((end - start) * 1000) - 1), max_size=20)
    for t in (start + ms / 1000 for ms in data.draw(offsets)):
        expected = next(n for s, e, n in segments if s <= t < e)
        assert required_at(staffing, t) == expected


def test_every_day_of_a_dst_year_has_the_right_length():
    rules = Staffing("Europe/Berlin", 0, (rule(EVERY_DAY, time(8), time(18), 1),))
    day = date(2026, 1, 1)
    while day.year == 2026:
        start, end = day_start(day, BERLIN), day_start(day + timedelta(days=1), BERLIN)
        segments = requirement_segments(rules, start, end)
        assert [n for _, _, n in segments] == [0, 1, 0]
        assert segments[1][1] - segments[1][0] == 10 * HOUR
        day += timedelta(days=1)
