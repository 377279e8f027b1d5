"""How many agents the staffing schedule requires, at an instant or over a range.

Rules are written in local wall-clock time of `Staffing.timezone`. A rule applies on the
listed weekdays while the local clock reads `start <= clock < end`; the first rule that
applies wins; no rule, or a holiday (a local date in `holidays`), means `default`.

Because rules follow the wall clock, a rule 08:00-18:00 is 08:00-18:00 local on every day,
including DST change days (then it is 10 h of real time all the same, since DST changes
happen at night). The consequences around the change itself, by design identical in
`required_at` and `requirement_segments`:

- Spring forward (Europe/Berlin: 02:00 jumps to 03:00): local times 02:00-02:59 do not exist.
  A rule 02:30-04:00 applies from 03:00, when the clock first reads a time inside it; rules
  02:00-02:45 or 02:00-03:00 do not apply at all that night.
- Fall back (03:00 returns to 02:00): 02:00-02:59 happens twice, and a rule covering 02:30
  applies during both passes (a 02:00-03:00 rule then lasts two real hours).

A rule's `end` of `time.max` (23:59:59.999999) means "until midnight", so that a config
`24:00` can be represented. Times resolve to the microsecond (what `datetime` resolves).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from itertools import pairwise
from zoneinfo import ZoneInfo

from exporter.config.model import Staffing, StaffingRule
from exporter.localtime import day_start

Segment = tuple[float, float, int]  # [start, end) in unix seconds, agents required
_EPOCH = date(1970, 1, 1)
_DAY = 86400.0


def required_at(staffing: Staffing, t: float) -> int:
    """Agents required at instant `t`."""
    local = datetime.fromtimestamp(t, ZoneInfo(staffing.timezone))
    if local.date() in staffing.holidays:
        return staffing.default
    return _required(staffing, local.weekday(), _seconds(local.time()))


def requirement_segments(staffing: Staffing, start: float, end: float) -> list[Segment]:
    """Contiguous (start, end, required) segments covering [start, end), in time order.

    The first segment starts at `start`, the last ends at `end`, neighbours share their
    boundary and differ in `required`. Empty when end <= start.
    """
    if end <= start:
        return []
    tz = ZoneInfo(staffing.timezone)
    out: list[Segment] = []
    day = datetime.fromtimestamp(start, tz).date()
    while True:
        segments = _day_segments(staffing, day)
        for s, e, n in segments:
            s, e = max(s, start), min(e, end)
            if e <= s:
                continue
            if out and out[-1][2] == n:
                out[-1] = (out[-1][0], e, n)
            else:
                out.append((s, e, n))
        if segments[-1][1] >= end:
            return out
        day += timedelta(days=1)


def _required(staffing: Staffing, weekday: int, clock: float) -> int:
    """First matching rule at local wall-clock second `clock` of a day, else the default."""
    for rule in staffing.rules:
        if weekday in rule.days and _seconds(rule.start) <= clock < _end_seconds(rule):
            return rule.agents
    return staffing.default


def _seconds(t: time) -> float:
    return t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6


def _end_seconds(rule: StaffingRule) -> float:
    return _DAY if rule.end == time.max else _seconds(rule.end)


@lru_cache(maxsize=128)
def _day_segments(staffing: Staffing, day: date) -> tuple[Segment, ...]:
    """The requirement over one whole local day, [its midnight, the next midnight).

    The day is cut into pieces of constant UTC offset (one piece, or two on a DST change day).
    Within a piece the wall clock runs in step with real time, so each rule boundary that the
    clock passes in that piece maps to exactly one instant; the value of each sub-piece is the
    rule evaluation at its first instant, which is what `required_at` would answer there.
    """
    tz = ZoneInfo(staffing.timezone)
    pieces = _constant_offset_pieces(day, tz)
    if day in staffing.holidays:
        return ((pieces[0][0], pieces[-1][1], staffing.default),)
    weekday = day.weekday()
    marks = sorted(
        {_seconds(r.start) for r in staffing.rules if weekday in r.days}
        | {_end_seconds(r) for r in staffing.rules if weekday in r.days}
    )
    naive_midnight = (day - _EPOCH).days * _DAY  # local midnight as if the zone were UTC
    out: list[Segment] = []
    for lo, hi, offset in pieces:
        shift = offset - naive_midnight  # instant + shift = wall-clock seconds into the day
        cuts = [lo, *(m - shift for m in marks if lo + shift < m < hi + shift), hi]
        for a, b in pairwise(cuts):
            n = _required(staffing, weekday, a + shift)
            if out and out[-1][2] == n:
                out[-1] = (out[-1][0], b, n)
            else:
                out.append((a, b, n))
    return tuple(out)


def _constant_offset_pieces(day: date, tz: ZoneInfo) -> list[tuple[float, float, float]]:
    """[lo, hi, utc offset seconds] pieces that together cover the local day `day`.

    Offset changes are found by bisection over whole seconds (transitions fall on whole
    seconds). A stretch whose two ends share an offset is taken to have no change: a zone
    that changed there and back within one day would go unnoticed (no zone does).
    """
    lo = day_start(day, tz)
    end = day_start(day + timedelta(days=1), tz)
    pieces = []
    while True:
        offset = _offset(lo, tz)
        last = end - 1
        if _offset(last, tz) == offset:
            pieces.append((lo, end, offset))
            return pieces
        # Invariant: the offset at `good` is `offset`, at `bad` it is not.
        good, bad = lo, last
        while bad - good > 1:
            mid = (good + bad) // 2
            if _offset(mid, tz) == offset:
                good = mid
            else:
                bad = mid
        pieces.append((lo, bad, offset))
        lo = bad


def _offset(t: float, tz: ZoneInfo) -> float:
    offset = datetime.fromtimestamp(t, tz).utcoffset()
    assert offset is not None  # a ZoneInfo always has one
    return offset.total_seconds()
