"""The pure parsers: any JSON value in, model values or BadBody out, never anything else."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, date, datetime

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from exporter.model import AgentLive, Interval, ParseStats
from exporter.rocketchat.parse import (
    BadBody,
    assemble_day,
    live_counts,
    parse_agents_page,
    parse_agents_status,
    parse_history,
    parse_history_page,
    parse_instant,
)

DAY = date(2024, 3, 5)


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def entry(start: object, stop: object) -> dict[str, object]:
    return {"startedAt": start, "stoppedAt": stop}


def body(agents: list[object], total: object = None, **extra: object) -> dict[str, object]:
    out: dict[str, object] = {"agents": agents, "success": True, **extra}
    out["total"] = len(agents) if total is None else total
    return out


# ---- dates --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-05T08:00:00.000Z", ts("2024-03-05T08:00:00")),
        ("2024-03-05T08:00:00.250Z", ts("2024-03-05T08:00:00") + 0.25),
        ("2024-03-05T09:00:00+01:00", ts("2024-03-05T08:00:00")),
        ("2024-03-05T08:00:00", ts("2024-03-05T08:00:00")),  # no zone: UTC
        ({"$date": "2024-03-05T08:00:00Z"}, ts("2024-03-05T08:00:00")),
        ({"$date": 1709625600000}, 1709625600.0),
        ("not a date", None),
        ("", None),
        ("2024-13-45T99:00:00Z", None),
        (None, None),
        (1709625600, None),  # bare numbers are ambiguous (s or ms): skipped
        (True, None),
        ([], None),
        ({"$date": None}, None),
        ({"$date": 10**400}, None),
        ("0001-01-01T00:00:00+01:00", -62135600400.0),  # absurd but valid: windows clip it
    ],
)
def test_parse_instant(value: object, expected: float | None) -> None:
    assert parse_instant(value) == expected


# ---- history pages ------------------------------------------------------------------------------


def test_doc_example_parses() -> None:
    page = {
        "agents": [
            {
                "serviceHistory": [
                    entry("2021-11-24T08:35:49.058Z", "2021-11-24T08:41:32.721Z"),
                    entry("2021-11-24T08:51:15.623Z", "2021-11-24T08:53:59.707Z"),
                ],
                "availableTimeInSeconds": 2115334,
                "username": "doe.john",
            },
            {"availableTimeInSeconds": 1508, "username": "max.yui"},  # no fullReport
        ],
        "count": 2,
        "offset": 0,
        "total": 2,
        "success": True,
    }
    day = parse_history(DAY, page)
    assert set(day.agents) == {"doe.john", "max.yui"}
    john = day.agents["doe.john"]
    assert john.reported_seconds == 2115334.0
    assert john.intervals == (
        Interval(ts("2021-11-24T08:35:49.058"), ts("2021-11-24T08:41:32.721")),
        Interval(ts("2021-11-24T08:51:15.623"), ts("2021-11-24T08:53:59.707")),
    )
    assert day.agents["max.yui"].intervals == ()
    assert day.total == 2 and day.missing_agents == 0
    assert day.stats == ParseStats()


def test_bad_entries_are_skipped_and_counted() -> None:
    good = entry("2024-03-05T08:00:00Z", "2024-03-05T09:00:00Z")
    page = body(
        [
            {
                "username": "a",
                "serviceHistory": [
                    good,
                    entry(None, "2024-03-05T09:00:00Z"),  # null
                    {"stoppedAt": "2024-03-05T09:00:00Z"},  # missing
                    entry("garbage", "2024-03-05T09:00:00Z"),  # unparsable
                    entry("2024-03-05T10:00:00Z", "2024-03-05T09:00:00Z"),  # stop before start
                    entry(5, 6),  # wrong type
                    "not an object",
                    None,
                ],
                "availableTimeInSeconds": "3600",  # wrong type: unknown, not a crash
            },
        ]
    )
    day = parse_history(DAY, page)
    assert day.agents["a"].intervals == (
        Interval(ts("2024-03-05T08:00:00"), ts("2024-03-05T09:00:00")),
    )
    assert day.agents["a"].reported_seconds is None
    assert day.stats == ParseStats(skipped_entries=7)


def test_bad_agents_are_skipped_and_counted() -> None:
    page = body(
        [
            {"username": "ok", "serviceHistory": []},
            {"username": None},
            {"username": ""},
            {"username": 42},
            {"serviceHistory": []},
            "string",
            None,
            {"username": "hist-not-list", "serviceHistory": "oops"},
        ]
    )
    day = parse_history(DAY, page)
    assert set(day.agents) == {"ok", "hist-not-list"}
    assert day.stats.skipped_agents == 6
    assert day.stats.skipped_entries == 1  # the non-list serviceHistory


def test_duplicates_and_overlaps_are_merged_and_counted() -> None:
    a = entry("2024-03-05T08:00:00Z", "2024-03-05T09:00:00Z")
    overlapping = entry("2024-03-05T08:30:00Z", "2024-03-05T10:00:00Z")
    later = entry("2024-03-05T12:00:00Z", "2024-03-05T13:00:00Z")
    page = body([{"username": "a", "serviceHistory": [later, a, a, overlapping]}])
    day = parse_history(DAY, page)
    assert day.agents["a"].intervals == (
        Interval(ts("2024-03-05T08:00:00"), ts("2024-03-05T10:00:00")),
        Interval(ts("2024-03-05T12:00:00"), ts("2024-03-05T13:00:00")),
    )
    assert day.stats.merged_entries == 2


def test_agent_on_two_pages_is_merged() -> None:
    a = entry("2024-03-05T08:00:00Z", "2024-03-05T09:00:00Z")
    b = entry("2024-03-05T11:00:00Z", "2024-03-05T12:00:00Z")
    p1 = parse_history_page(body([{"username": "a", "serviceHistory": [a]}], total=2))
    p2 = parse_history_page(
        body([{"username": "a", "serviceHistory": [a, b], "availableTimeInSeconds": 7200}], total=2)
    )
    day = assemble_day(DAY, [p1, p2])
    assert len(day.agents["a"].intervals) == 2
    assert day.agents["a"].reported_seconds == 7200
    assert day.stats.merged_entries == 1


def test_total_is_never_below_received() -> None:
    page = body([{"username": n} for n in "abc"], total=1)
    assert parse_history(DAY, page).total == 3
    assert parse_history(DAY, body([{"username": "a"}], total="x")).total == 1
    assert parse_history(DAY, body([{"username": "a"}], total=5)).missing_agents == 4


@pytest.mark.parametrize(
    "bad",
    [
        None,
        [],
        "text",
        42,
        {"success": False, "error": "nope"},
        {"agents": None},
        {"agents": "x"},
        {"success": True},
    ],
)
def test_unusable_history_body_is_bad_body(bad: object) -> None:
    with pytest.raises(BadBody):
        parse_history_page(bad)


# ---- live status --------------------------------------------------------------------------------


def test_agents_page_and_counts() -> None:
    page = parse_agents_page(
        {
            "users": [
                {"username": "a", "status": "online", "statusLivechat": "available"},
                {"username": "b", "status": "away", "statusLivechat": "available"},
                {"username": "c", "status": "busy", "statusLivechat": "available"},
                {"username": "d", "status": "online", "statusLivechat": "not-available"},
                {"username": "e", "status": "offline", "statusLivechat": "available"},
                {"username": "f"},  # no presence: offline
                {"status": "online"},  # no username: skipped
            ],
            "total": 7,
            "success": True,
        }
    )
    assert page.received == 7 and page.skipped == 1 and page.total == 7
    assert page.agents[5] == AgentLive("f", "offline", False)
    assert live_counts(page.agents) == {"available": 1, "away": 1, "busy": 1, "offline": 3}


def test_agents_status_counts() -> None:
    counts = parse_agents_status({"available": 2, "away": 1, "offline": 7, "success": True})
    assert counts == {"available": 2, "away": 1, "busy": 0, "offline": 7}
    for bad in ({"success": True}, {"available": "2"}, {"available": -1}, [], {"success": False}):
        with pytest.raises(BadBody):
            parse_agents_status(bad)


# ---- property: never anything but BadBody --------------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(
        [
            "2024-03-05T08:00:00Z",
            "2024-03-05T08:00:00.123Z",
            "2024-03-05T08:00:00",
            "2024-03-05",
            "9999-12-31T23:59:59-23:59",
            "0001-01-01T00:00:00+23:59",
            "available",
            "online",
        ]
    ),
)
_json = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(
            st.sampled_from(
                [
                    "agents",
                    "users",
                    "username",
                    "serviceHistory",
                    "startedAt",
                    "stoppedAt",
                    "availableTimeInSeconds",
                    "total",
                    "success",
                    "status",
                    "statusLivechat",
                    "available",
                    "away",
                    "busy",
                    "offline",
                    "$date",
                ]
            )
            | st.text(max_size=5),
            children,
            max_size=6,
        ),
    ),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(_json)
def test_parsers_raise_only_bad_body(value: object) -> None:
    for parse in (
        lambda v: parse_history(DAY, v),
        parse_agents_page,
        parse_agents_status,
    ):
        with contextlib.suppress(BadBody):
            parse(value)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {"username": st.one_of(st.text(max_size=3), _scalars), "serviceHistory": _json}
        ),
        max_size=6,
    ),
    st.one_of(_scalars, st.integers(min_value=0, max_value=20)),
)
def test_history_shapes_never_crash(agents: list[object], total: object) -> None:
    day = parse_history(
        DAY, json.loads(json.dumps({"agents": agents, "total": total}, default=str))
    )
    assert day.total >= len(day.agents)
    for agent in day.agents.values():
        assert all(i.start <= i.end for i in agent.intervals)
        assert all(
            a.end < b.start for a, b in zip(agent.intervals, agent.intervals[1:], strict=False)
        )


# ---- reusing the previous answer's agents (the steady poll's today) ---------------------------

_ENTRIES = [
    {"startedAt": "2024-03-05T08:00:00.000Z", "stoppedAt": "2024-03-05T09:00:00.000Z"},
    {"startedAt": "2024-03-05T08:30:00.000Z", "stoppedAt": "2024-03-05T10:00:00.000Z"},
    {"startedAt": "2024-03-05T11:00:00.000Z", "stoppedAt": "2024-03-05T11:00:00.000Z"},
    {"startedAt": {"$date": 1709630000000}, "stoppedAt": {"$date": 1709631000000}},
    {"startedAt": {"$date": True}, "stoppedAt": {"$date": 1709631000000}},
    {"startedAt": {"$date": 1}, "stoppedAt": {"$date": 1709631000000}},
    {"startedAt": None, "stoppedAt": "2024-03-05T09:00:00.000Z"},
    "not an entry",
]
_ITEMS = st.fixed_dictionaries(
    {"username": st.sampled_from(["a", "b", "c", "d\ud800", "", 7])},
    optional={
        "serviceHistory": st.one_of(
            st.none(), st.lists(st.sampled_from(_ENTRIES), max_size=4), st.just("x")
        ),
        "availableTimeInSeconds": st.sampled_from([0, 1, 1.0, True, 3600, -5, None, "60"]),
    },
)
_BODIES = st.fixed_dictionaries(
    {"agents": st.lists(_ITEMS, max_size=6), "success": st.just(True)},
    optional={"total": st.sampled_from([0, 3, 10, None, True])},
)


_TRUE_THEN_ONE = (  # deep `==` calls these equal, but a bool is no instant and 1 is one
    {"agents": [{"username": "a", "serviceHistory": [_ENTRIES[4]]}], "total": 1},
    {"agents": [{"username": "a", "serviceHistory": [_ENTRIES[5]]}], "total": 1},
)


@settings(max_examples=300, deadline=None)
@given(_BODIES, _BODIES)
@example(*_TRUE_THEN_ONE)
@example(*reversed(_TRUE_THEN_ONE))
def test_reusing_the_previous_answer_gives_exactly_a_fresh_parse(previous, current):
    from exporter.rocketchat.parse import assemble_day, parse_day_reusing, parse_history_page

    day = date(2024, 3, 5)
    _, memo = parse_day_reusing(day, previous, None)
    reused, kept = parse_day_reusing(day, current, memo)
    fresh = assemble_day(day, [parse_history_page(current)])
    assert reused == fresh
    assert {n: a.intervals for n, a in reused.agents.items()} == {
        n: a.intervals for n, a in fresh.agents.items()
    }
    assert set(kept) <= set(reused.agents)


def test_an_unchanged_agent_keeps_its_object_and_a_changed_one_does_not():
    from exporter.rocketchat.parse import parse_day_reusing

    day = date(2024, 3, 5)
    first = {
        "agents": [
            {"username": "a", "serviceHistory": [_ENTRIES[0]]},
            {"username": "b", "serviceHistory": [_ENTRIES[0]]},
        ],
        "total": 2,
    }
    second = {
        "agents": [
            {"username": "a", "serviceHistory": [_ENTRIES[0]]},
            {"username": "b", "serviceHistory": [_ENTRIES[0], _ENTRIES[2]]},
        ],
        "total": 2,
    }
    one, memo = parse_day_reusing(day, first, None)
    two, _ = parse_day_reusing(day, second, memo)
    assert two.agents["a"] is one.agents["a"]
    assert two.agents["b"] is not one.agents["b"] and len(two.agents["b"].intervals) == 2
