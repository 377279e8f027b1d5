"""Property tests (hypothesis) for what the unit suites do not already cover.

tests/test_history_parser.py has "any JSON never raises" for the parsers and
tests/test_availability.py the invariants of the window math function by function. Here:

- the whole snapshot (history days + live status + open-session streaks + staffing, in
  zones with DST) keeps the invariants: available seconds within [0, window], ratio within
  [0, 1], min <= avg <= max, unstaffed <= understaffed <= window;
- whatever the snapshot holds renders to an exposition that parses back to the same values
  and names (hostile names included), and log lines stay single lines;
- parsing what servers and clients send never raises: rate-limit headers, Date headers,
  Authorization headers;
- the time zone check finds exactly the zones whose midnight differs.
"""

from __future__ import annotations

import logging
import math
import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from exporter.availability import window_bounds
from exporter.config.model import AgentFilter, Secret, ServerConfig, Staffing, StaffingRule, Window
from exporter.exposition import ServerHealth
from exporter.intervals import merge_intervals
from exporter.localtime import day_start
from exporter.logs import JsonFormatter, LogfmtFormatter
from exporter.model import AgentDay, AgentLive, DayHistory, Interval, LiveStatus
from exporter.publisher import Publisher
from exporter.rocketchat.ratelimit import MAX_WAIT_SECONDS, RateLimiter, retry_after_429
from exporter.rocketchat.transport import Transport
from exporter.sessions import Streak
from exporter.snapshot import SnapshotInputs, build_snapshot
from exporter.webconfig import _basic_credentials
from exporter.zonecheck import implied_utc_offset, zone_mismatch
from tests.support.faultrig import parse_page

ZONES = ["UTC", "Europe/Berlin", "America/Santiago", "Asia/Kolkata", "America/St_Johns"]
WINDOWS = {
    "1h": Window("1h", "duration", 3600.0),
    "8h": Window("8h", "duration", 8 * 3600.0),
    "24h": Window("24h", "duration", 86400.0),
    "3d": Window("3d", "duration", 3 * 86400.0),
    "today": Window("today", "today"),
    "yesterday": Window("yesterday", "yesterday"),
}
NAMES = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), min_codepoint=1), min_size=1, max_size=12
)
EVERYONE = AgentFilter(include=re.compile(".*", re.DOTALL), exclude=None)


@st.composite
def scenario(draw):
    tz = ZoneInfo(draw(st.sampled_from(ZONES)))
    last = draw(st.dates(date(2024, 1, 1), date(2027, 12, 31)))
    days = [last - timedelta(days=i) for i in (3, 2, 1, 0)]
    names = draw(st.lists(NAMES, min_size=0, max_size=6, unique=True))
    history = []
    for d in days:
        lo, hi = day_start(d, tz), day_start(d + timedelta(days=1), tz)
        agents = {}
        for name in names:
            raw = draw(
                st.lists(
                    st.tuples(st.floats(0, 1, allow_nan=False), st.floats(0, 1, allow_nan=False)),
                    max_size=4,
                )
            )
            ivs = [Interval(lo + min(a, b) * (hi - lo), lo + max(a, b) * (hi - lo)) for a, b in raw]
            merged, _ = merge_intervals(ivs)
            agents[name] = AgentDay(name, merged, draw(st.none() | st.floats(0, 200000)))
        history.append(DayHistory(day=d, agents=agents, total=len(agents)))
    now = day_start(last, tz) + draw(st.floats(0, 1)) * (
        day_start(last + timedelta(days=1), tz) - day_start(last, tz)
    )
    live_names = draw(st.lists(st.sampled_from(names), unique=True)) if names else []
    live = tuple(
        AgentLive(
            n, draw(st.sampled_from(["online", "away", "busy", "offline"])), draw(st.booleans())
        )
        for n in live_names
    )
    per_agent = draw(st.booleans())
    streaks = {
        a.username: Streak(start=now - draw(st.floats(0, 2 * 86400)), last_seen=now)
        for a in live
        if a.available
    }
    windows = draw(st.lists(st.sampled_from(sorted(WINDOWS)), min_size=1, unique=True))
    staffing = None
    if draw(st.booleans()):
        staffing = Staffing(
            timezone=str(tz),
            default=draw(st.integers(1, 3)),
            rules=(
                StaffingRule(
                    frozenset(range(7)),
                    datetime.min.time().replace(hour=9),
                    datetime.min.time().replace(hour=17),
                    draw(st.integers(1, 5)),
                ),
            ),
        )
    return SnapshotInputs(
        server="rc",
        tz=tz,
        days=history,
        live=LiveStatus(agents=live, counts={}),
        streaks=streaks,
        windows=[WINDOWS[w] for w in windows],
        agent_filter=AgentFilter(EVERYONE.include, None, per_agent=per_agent),
        staffing=staffing,
        include_open_sessions=draw(st.booleans()),
    ), now


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_snapshot_invariants_and_exposition_round_trip(case):
    inp, now = case
    snap = build_snapshot(inp, now)
    lengths = {}
    for w in inp.windows:
        start, end = window_bounds(w, now, inp.tz)
        lengths[w.name] = max(0.0, end - start)
    for row in snap.agents:
        for name, aw in row.windows:
            assert 0 <= aw.seconds <= lengths[name] + 1e-6, (name, aw)
            assert 0 <= aw.ratio <= 1
            assert aw.intervals >= 1
        if row.open_session_seconds is not None:
            assert row.open_session_seconds >= 0
    agents_with_data = {n for d in inp.days for n, a in d.agents.items() if a.intervals}
    for name, team in snap.team:
        length = lengths[name]
        assert 0 <= team.min <= team.avg <= team.max, team
        assert team.active <= len(agents_with_data | set(inp.streaks))
        assert team.max <= len(agents_with_data | set(inp.streaks))
        assert 0 <= team.unstaffed_seconds <= length + 1e-3
        if inp.staffing is None:
            assert team.understaffed_seconds is None
        else:
            # default and rule >= 1: wherever nobody was there, somebody was required.
            assert team.unstaffed_seconds <= team.understaffed_seconds + 1e-3
            assert team.understaffed_seconds <= length + 1e-3
    assert sum(c for _, c in snap.status_counts) == len(inp.live.agents or ())

    # The page parses back to exactly these values and names.
    pub = Publisher(["rc"], 1e9)
    pub.update(ServerHealth(server="rc", up=True, last_success=now), snap, now)
    samples = parse_page(pub.page(now))
    for row in snap.agents:
        for name, aw in row.windows:
            key = (
                "agent_available_seconds",
                frozenset({"server": "rc", "agent": row.agent, "window": name}.items()),
            )
            assert math.isclose(samples[key], aw.seconds, rel_tol=1e-12, abs_tol=1e-9)
    for name, team in snap.team:
        key = ("available_agents_avg", frozenset({"server": "rc", "window": name}.items()))
        assert math.isclose(samples[key], team.avg, rel_tol=1e-12, abs_tol=1e-12)


# ---- headers from servers and clients ---------------------------------------------------------

HEADER_TEXT = st.one_of(
    st.text(max_size=40),
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["Wed, 21 Oct 2015 07:28:00 GMT", "0", "-1", "1e400", "nan", " 30 ", ""]),
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "retry-after"]
        ),
        HEADER_TEXT,
    ),
    st.text(max_size=80),
    st.floats(0, 4e9),
)
def test_rate_limit_headers_never_raise_and_waits_stay_bounded(headers, body, now):
    wait = retry_after_429(headers, body, now)
    assert 0 <= wait <= MAX_WAIT_SECONDS
    limiter = RateLimiter()
    limiter.observe("history", headers, now)
    limiter.exhausted("history")
    delay = limiter.delay("history", now)
    assert 0 <= delay <= MAX_WAIT_SECONDS
    assert limiter.min_interval("history", 3) >= 0


def _transport() -> Transport:
    return Transport(
        ServerConfig(
            name="p",
            url="http://127.0.0.1:1",
            user_id=Secret(value="uid-xxxx"),
            auth_token=Secret(value="tok-xxxx"),
        ),
        clock=lambda: 1.7e9,
    )


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        HEADER_TEXT,
        st.datetimes(timezones=st.just(UTC)).map(lambda d: d.strftime("%a, %d %b %Y %H:%M:%S GMT")),
    )
)
def test_date_header_never_raises_and_skew_is_bounded(header):
    transport = _transport()
    transport._observe_date(header)
    skew = transport.skew or 0.0
    assert abs(skew) <= 86400 and math.isfinite(skew)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.none(),
        st.text(max_size=60),
        st.binary(max_size=40).map(lambda b: "Basic " + __import__("base64").b64encode(b).decode()),
    )
)
def test_authorization_header_parsing_never_raises(header):
    result = _basic_credentials(header)
    assert result is None or (isinstance(result[0], str) and isinstance(result[1], bytes))


# ---- logs stay one line per record -----------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40), st.text(max_size=40))
def test_any_value_logs_as_one_line(message, value):
    record = logging.makeLogRecord(
        {"name": "exporter", "levelno": 30, "levelname": "WARNING", "msg": message}
    )
    record.agent = value
    for formatter in (LogfmtFormatter(), JsonFormatter()):
        line = formatter.format(record)
        assert "\n" not in line


# ---- the time zone check --------------------------------------------------------------------


def _split_days(real: ZoneInfo, d: date) -> tuple[DayHistory, DayHistory]:
    """Rocket.Chat's midnight split of a session across the start of `d` in zone `real`."""
    midnight = day_start(d, real)
    before = {"a": AgentDay("a", (Interval(midnight - 3600, midnight - 1),), None)}
    after = {"a": AgentDay("a", (Interval(midnight, midnight + 3600),), None)}
    return (
        DayHistory(day=d - timedelta(days=1), agents=before, total=1),
        DayHistory(day=d, agents=after, total=1),
    )


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(ZONES + ["America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu"]),
    st.sampled_from(ZONES + ["America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu"]),
    st.dates(date(2020, 1, 1), date(2030, 12, 31)),
)
def test_zone_check_flags_exactly_a_different_midnight(real_name, configured_name, d):
    real, configured = ZoneInfo(real_name), ZoneInfo(configured_name)
    midnight = day_start(d, real)
    local = datetime.fromtimestamp(midnight, real)
    assume(local.hour == 0 and local.minute == 0)  # a day whose midnight exists (not Santiago's)
    before, after = _split_days(real, d)
    found = zone_mismatch(before, after, configured)
    same_midnight = datetime.fromtimestamp(midnight, configured).time().isoformat() == "00:00:00"
    if same_midnight:
        assert found is None
    else:
        assert found is not None
        offset = real.utcoffset(local.replace(tzinfo=None)).total_seconds()
        assert found == implied_utc_offset(midnight)
        assert (found - offset) % 86400 == 0  # the same wall clock (±24 h for +13/+14)


# ---- text from Rocket.Chat: whatever it holds, every output stays valid UTF-8 ---------------

NASTY_PIECES = ["\ud800", "\udfff", "\x00", "\u202e", "\u2066", "\r", "\x1b[31m", "\n", '"', "\\"]
HOSTILE = st.lists(
    st.one_of(
        st.characters(),  # any code point, surrogates included
        st.sampled_from(NASTY_PIECES),
        st.just("x" * 3000),  # very long
    ),
    min_size=1,
    max_size=12,
).map("".join)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(HOSTILE, min_size=1, max_size=4, unique=True), HOSTILE)
def test_hostile_text_reaches_every_output_as_valid_utf8(names, error):
    import json
    import subprocess

    from exporter.rocketchat.parse import BadBody, assemble_day, parse_history_page
    from exporter.web import landing_page
    from tests.support.procs import require_binary

    tz = ZoneInfo("UTC")
    now = datetime(2026, 3, 4, 12, tzinfo=UTC).timestamp()
    entry = {"startedAt": "2026-03-04T08:00:00.000Z", "stoppedAt": "2026-03-04T09:00:00.000Z"}
    # As Rocket.Chat (Node's JSON.stringify) sends it: lone surrogates as \\udXXX escapes.
    body = json.dumps(
        {"agents": [{"username": n, "serviceHistory": [entry]} for n in names], "total": len(names)}
    )
    day = assemble_day(date(2026, 3, 4), [parse_history_page(json.loads(body))])
    for username in day.agents:
        username.encode("utf-8")
    try:
        parse_history_page(json.loads(json.dumps({"success": False, "error": error})))
    except BadBody as exc:
        message = str(exc)
    message.encode("utf-8")
    snap = build_snapshot(
        SnapshotInputs(
            server="rc",
            tz=tz,
            days=[day],
            live=LiveStatus(agents=None, counts={}),
            streaks={},
            windows=(WINDOWS["24h"],),
            agent_filter=EVERYONE,
            staffing=None,
            include_open_sessions=True,
        ),
        now,
    )
    pub = Publisher(["rc"], 1e9)
    health = ServerHealth(server="rc", up=False, last_poll=now, last_error=message)
    pub.update(health, snap, now)
    page = pub.page(now)
    assert len(parse_page(page)) > 0  # decodes as UTF-8 and parses
    promtool = require_binary("promtool")
    result = subprocess.run([promtool, "check", "metrics"], input=page, capture_output=True)
    assert result.returncode == 0, result.stderr.decode()
    landing_page(pub, now).decode("utf-8")
    record = logging.makeLogRecord(
        {"name": "exporter", "levelno": 30, "levelname": "WARNING", "msg": message}
    )
    record.agent = next(iter(day.agents))
    for formatter in (LogfmtFormatter(), JsonFormatter()):
        formatter.format(record).encode("utf-8")
