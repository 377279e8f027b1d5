"""The Rocket.Chat simulator, over real HTTP on 127.0.0.1, against hand-computed answers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from exporter.simulator import ManualClock, Simulator, SimulatorConfig, serve
from exporter.simulator.data import Zone
from exporter.simulator.protocol import parse_js_date

HISTORY = "/api/v1/livechat/analytics/agents/available-for-service-history"
USERS = "/api/v1/livechat/users/agent"
CHART = "/api/v1/livechat/analytics/dashboards/charts/agents-status"
AUTH = {"X-User-Id": "sim-user", "X-Auth-Token": "sim-token"}
ROOT = Path(__file__).resolve().parent.parent


def ts(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


T0 = ts("2023-11-15T12:00:00Z")


class Env:
    def __init__(self, sim: Simulator, client: httpx.Client, clock: ManualClock):
        self.sim, self.client, self.clock = sim, client, clock

    def history(self, start: str, end: str | None = None, **params: object) -> httpx.Response:
        q = {"start": start, "end": end or start, **params}
        return self.client.get(HISTORY, params=q)

    def day(self, start: str, end: str | None = None, **params: object) -> dict:
        r = self.history(start, end, fullReport="true", count=0, **params)
        assert r.status_code == 200, r.text
        return r.json()

    def agents(self, start: str, end: str | None = None) -> dict[str, dict]:
        return {a["username"]: a for a in self.day(start, end)["agents"]}


@pytest.fixture
def start() -> Iterator:
    opened: list[tuple] = []

    def _start(clock: ManualClock | None = None, **cfg: object) -> Env:
        cfg.setdefault("agents", 0)
        cfg.setdefault("rate_limit", 0)
        clock = clock or ManualClock(T0)
        sim = Simulator(SimulatorConfig(**cfg), clock=clock)  # type: ignore[arg-type]
        server = serve(sim, "127.0.0.1", 0)
        client = httpx.Client(base_url=server.url, headers=AUTH, timeout=5)
        opened.append((server, client))
        return Env(sim, client, clock)

    yield _start
    for server, client in opened:
        client.close()
        server.stop()


def entry(start: str, stop: str) -> dict:
    return {"startedAt": start, "stoppedAt": stop}


# --------------------------------------------------------------------------- plumbing


def test_info_needs_no_auth(start):
    env = start(pagination="rejected")
    r = httpx.get(env.client.base_url.join("/api/info"))
    assert r.status_code == 200
    assert r.json() == {"version": "7.0.0", "success": True}
    assert env.sim.requests[("info", 200)] == 1


def test_401_bodies_and_token_revocation(start):
    env = start()
    login = "You must be logged in to do this."
    for headers in ({}, {"X-User-Id": "sim-user", "X-Auth-Token": "wrong"}):
        r = httpx.get(env.client.base_url.join(HISTORY), headers=headers)
        assert r.status_code == 401
        assert r.json() == {"success": False, "status": "error", "message": login, "error": login}
    assert env.history("2023-11-15").status_code == 200
    env.sim.revoke_token()
    assert env.history("2023-11-15").status_code == 401
    assert env.client.get(USERS).status_code == 401
    env.sim.set_credentials("sim-user", "sim-token")
    assert env.history("2023-11-15").status_code == 200

    old = start(auth_style="old")
    r = httpx.get(old.client.base_url.join(CHART))
    assert r.status_code == 401
    assert r.json() == {"status": "error", "message": login}


def test_403_per_route_both_styles_and_runtime_switch(start):
    env = start(forbidden=frozenset({"history"}))
    r = env.history("2023-11-15")
    assert r.status_code == 403
    assert r.json() == {
        "success": False,
        "error": "User does not have the permissions required for this action [error-unauthorized]",
    }
    assert env.client.get(USERS).status_code == 200
    env.sim.forbid("agents")
    env.sim.forbid("history", False)
    assert env.client.get(USERS).status_code == 403
    assert env.history("2023-11-15").status_code == 200

    old = start(forbidden=frozenset({"agents_status"}), forbidden_style="unauthorized")
    r = old.client.get(CHART)
    assert (r.status_code, r.json()) == (403, {"success": False, "error": "unauthorized"})


def test_licence_new_and_old_servers(start):
    new = start(licence=False)
    r = httpx.get(new.client.base_url.join(HISTORY))  # licence middleware runs before auth
    assert r.status_code == 400
    assert r.json() == {
        "success": False,
        "error": "This is an enterprise feature [error-action-not-allowed]",
        "errorType": "error-action-not-allowed",
    }
    assert new.client.get(USERS).status_code == 200  # not licence-gated
    new.sim.licence = True
    assert new.history("2023-11-15").status_code == 200

    old = start(licence=False, unlicensed="old")
    assert old.history("2023-11-15").status_code == 404
    assert old.client.get("/api/v1/no/such/route").status_code == 404
    assert old.sim.requests[("history", 404)] == 1
    assert old.sim.requests[("unknown", 404)] == 1


def test_validation_bodies(start):
    env = start()

    def err(r: httpx.Response) -> tuple[int, dict]:
        return r.status_code, r.json()

    def invalid(msg: str) -> tuple[int, dict]:
        return 400, {
            "success": False,
            "error": f"{msg} [invalid-params]",
            "errorType": "invalid-params",
        }

    assert err(env.client.get(HISTORY)) == invalid("must have required property 'start'")
    r = env.client.get(HISTORY, params={"start": "2023-11-15"})
    assert err(r) == invalid("must have required property 'end'")
    r = env.client.get(HISTORY, params={"end": "2023-11-15"})
    assert err(r) == invalid("must have required property 'start'")
    assert err(env.history("2023-11-15", foo="1")) == invalid("must NOT have additional properties")
    assert err(env.history("2023-11-15", count="abc")) == invalid("must be number")
    r = env.client.get(HISTORY, params=[("start", "a"), ("start", "b"), ("end", "c")])
    assert err(r) == invalid("must be string")
    r = env.history("yesterday", "2023-11-15")
    assert err(r) == (
        400,
        {"success": False, "error": 'The "start" query parameter must be a valid date.'},
    )
    r = env.history("2023-11-15", "2023-13-45")
    assert err(r) == (
        400,
        {"success": False, "error": 'The "end" query parameter must be a valid date.'},
    )
    assert env.client.get(USERS, params={"bogus": "1"}).status_code == 400
    # The chart's schema has additionalProperties: true (Rocket.Chat's own UI sends start/end).
    assert env.client.get(CHART, params={"departmentId": "x", "y": "1"}).status_code == 200
    r = env.client.get(CHART, params=[("departmentId", "a"), ("departmentId", "b")])
    assert err(r) == invalid("must be string")


def test_reversed_range_is_empty_success(start):
    env = start()
    env.sim.add_session("alice", ts("2023-11-14T10:00:00Z"), ts("2023-11-14T11:00:00Z"))
    r = env.history("2023-11-15T00:00:00Z", "2023-11-14T00:00:00Z", fullReport="true")
    assert r.status_code == 200
    assert r.json() == {"agents": [], "count": 0, "offset": 0, "total": 0, "success": True}


def test_full_report_only_when_exactly_true(start):
    env = start()
    env.sim.add_session("alice", ts("2023-11-14T10:00:00Z"), ts("2023-11-14T11:00:00Z"))
    for value in (None, "True", "1", "yes", "TRUE"):
        params = {} if value is None else {"fullReport": value}
        body = env.history("2023-11-14", **params).json()
        assert body["agents"] == [{"availableTimeInSeconds": 3600, "username": "alice"}]
    body = env.history("2023-11-14", fullReport="true").json()
    assert body["agents"][0]["serviceHistory"] == [
        entry("2023-11-14T10:00:00.000Z", "2023-11-14T11:00:00.000Z")
    ]


# --------------------------------------------------------------------------- recording semantics


def test_midnight_split_at_23_59_59(start):
    env = start()
    env.sim.add_session("alice", ts("2023-11-14T22:00:00Z"), ts("2023-11-15T02:00:00.500Z"))
    day1 = env.agents("2023-11-14T10:00:00Z")["alice"]
    assert day1["serviceHistory"] == [entry("2023-11-14T22:00:00.000Z", "2023-11-14T23:59:59.000Z")]
    assert day1["availableTimeInSeconds"] == 7199
    day2 = env.agents("2023-11-15T10:00:00Z")["alice"]
    assert day2["serviceHistory"] == [entry("2023-11-15T00:00:00.000Z", "2023-11-15T02:00:00.500Z")]
    assert day2["availableTimeInSeconds"] == 7200  # 7200.5 truncated
    both = env.agents("2023-11-14T00:00:00Z", "2023-11-15T23:00:00Z")["alice"]
    assert both["availableTimeInSeconds"] == 7199 + 7200  # sum over the matched days ...
    assert both["serviceHistory"] == day1["serviceHistory"]  # ... but one day's intervals


def test_open_session_invisible_until_closed(start):
    env = start(clock=ManualClock(ts("2023-11-14T23:30:00Z")))
    env.sim.add_session("alice", ts("2023-11-14T22:00:00Z"), None, presence="away")
    # the day's document exists from the start of the session, but holds nothing yet
    assert env.agents("2023-11-14")["alice"] == {
        "serviceHistory": None,
        "availableTimeInSeconds": 0,
        "username": "alice",
    }
    assert env.client.get(CHART).json() == {
        "offline": 0,
        "away": 1,
        "busy": 0,
        "available": 0,
        "success": True,
    }
    user = env.client.get(USERS).json()["users"][0]
    assert (user["status"], user["statusLivechat"]) == ("away", "available")

    env.clock.set(ts("2023-11-15T00:30:00Z"))  # the midnight job closed and reopened it
    assert env.agents("2023-11-14")["alice"]["serviceHistory"] == [
        entry("2023-11-14T22:00:00.000Z", "2023-11-14T23:59:59.000Z")
    ]
    assert env.agents("2023-11-15")["alice"]["serviceHistory"] is None

    env.sim.close_session("alice", ts("2023-11-15T01:00:00Z"))
    env.clock.set(ts("2023-11-15T00:59:59.999Z"))
    assert env.agents("2023-11-15")["alice"]["availableTimeInSeconds"] == 0
    env.clock.set(ts("2023-11-15T01:00:00Z"))
    assert env.agents("2023-11-15")["alice"] == {
        "serviceHistory": [entry("2023-11-15T00:00:00.000Z", "2023-11-15T01:00:00.000Z")],
        "availableTimeInSeconds": 3600,
        "username": "alice",
    }


def test_future_sessions_and_agents_without_documents_are_absent(start):
    env = start()
    env.sim.add_agent("nobody")
    env.sim.add_session("later", ts("2023-11-15T13:00:00Z"), ts("2023-11-15T14:00:00Z"))
    env.sim.add_session("alice", ts("2023-11-15T09:00:00Z"), ts("2023-11-15T10:00:00Z"))
    body = env.day("2023-11-15")
    assert [a["username"] for a in body["agents"]] == ["alice"]
    assert body["total"] == 1
    env.clock.set(ts("2023-11-15T13:00:00Z"))
    assert sorted(env.agents("2023-11-15")) == ["alice", "later"]


def test_multi_day_sum_and_first_day_history(start):
    env = start()
    sim = env.sim
    sim.add_session("bob", ts("2023-11-13T08:00:00Z"), ts("2023-11-13T09:00:00Z"))
    sim.add_session("bob", ts("2023-11-13T10:00:00Z"), ts("2023-11-13T10:30:00Z"))
    sim.add_session("bob", ts("2023-11-14T08:00:00Z"), ts("2023-11-14T08:20:00Z"))
    sim.add_session("bob", ts("2023-11-15T08:00:00Z"), ts("2023-11-15T08:10:00Z"))
    sim.add_session("carl", ts("2023-11-14T07:00:00Z"), ts("2023-11-14T07:00:10.900Z"))
    sim.add_session("carl", ts("2023-11-14T07:01:00Z"), ts("2023-11-14T07:01:10.900Z"))
    agents = env.agents("2023-11-13T05:00:00Z", "2023-11-15T05:00:00Z")
    assert agents["bob"]["availableTimeInSeconds"] == 3600 + 1800 + 1200 + 600
    assert agents["bob"]["serviceHistory"] == [
        entry("2023-11-13T08:00:00.000Z", "2023-11-13T09:00:00.000Z"),
        entry("2023-11-13T10:00:00.000Z", "2023-11-13T10:30:00.000Z"),
    ]
    assert agents["carl"]["availableTimeInSeconds"] == 20  # each session truncated: 10 + 10
    assert len(agents["carl"]["serviceHistory"]) == 2
    later = env.agents("2023-11-14", "2023-11-15")
    assert later["bob"]["serviceHistory"] == [
        entry("2023-11-14T08:00:00.000Z", "2023-11-14T08:20:00.000Z")
    ]
    assert later["bob"]["availableTimeInSeconds"] == 1800


def test_sorted_by_username_and_deleted_users_vanish(start):
    env = start()
    for name in ("mia", "Zed", "alice", "bob"):
        env.sim.add_session(name, ts("2023-11-14T10:00:00Z"), ts("2023-11-14T10:01:00Z"))
    body = env.day("2023-11-14")
    assert [a["username"] for a in body["agents"]] == ["Zed", "alice", "bob", "mia"]
    env.sim.remove_agent("bob")
    body = env.day("2023-11-14")
    assert [a["username"] for a in body["agents"]] == ["Zed", "alice", "mia"]
    assert body["total"] == 3
    assert "bob" not in [u["username"] for u in env.client.get(USERS).json()["users"]]


def test_double_stop_defect(start):
    env = start()
    env.sim.add_session(
        "bob", ts("2023-11-14T10:00:00Z"), ts("2023-11-14T10:10:00Z"), double_stop=2.5
    )
    bob = env.agents("2023-11-14")["bob"]
    assert bob["serviceHistory"] == [
        entry("2023-11-14T10:00:00.000Z", "2023-11-14T10:10:00.000Z"),
        entry("2023-11-14T10:00:00.000Z", "2023-11-14T10:10:02.500Z"),
    ]
    assert bob["availableTimeInSeconds"] == 600 + 602


def test_day_granularity_in_server_time_zone(start):
    env = start(timezone="Asia/Kolkata")  # UTC+05:30
    # 01:30-02:00 IST on Nov 15, although it is still Nov 14 in UTC
    env.sim.add_session("alice", ts("2023-11-14T20:00:00Z"), ts("2023-11-14T20:30:00Z"))
    # 23:30 IST Nov 14 -> 00:30 IST Nov 15: split at local midnight (18:30 UTC)
    env.sim.add_session("bob", ts("2023-11-14T18:00:00Z"), ts("2023-11-14T19:00:00Z"))

    nov15 = env.agents("2023-11-14T19:00:00Z")  # 00:30 IST on Nov 15
    assert nov15["alice"]["availableTimeInSeconds"] == 1800
    assert nov15["bob"]["serviceHistory"] == [
        entry("2023-11-14T18:30:00.000Z", "2023-11-14T19:00:00.000Z")
    ]
    nov14 = env.agents("2023-11-14T18:00:00Z")  # 23:30 IST on Nov 14
    assert "alice" not in nov14
    assert nov14["bob"]["serviceHistory"] == [
        entry("2023-11-14T18:00:00.000Z", "2023-11-14T18:29:59.000Z")
    ]
    assert nov14["bob"]["availableTimeInSeconds"] == 1799
    # a five-minute range returns the whole local day, nothing is clipped
    r = env.history("2023-11-15T05:00:00+05:30", "2023-11-15T05:05:00+05:30")
    assert sorted(a["username"] for a in r.json()["agents"]) == ["alice", "bob"]
    # a date-only string is read as a local date by the model
    assert sorted(env.agents("2023-11-15")) == ["alice", "bob"]


def test_date_only_strings_are_local_days_even_west_of_utc():
    zone = Zone("America/New_York")
    d = parse_js_date("2023-11-15", zone)
    assert d is not None
    assert d.ms == ts("2023-11-15T00:00:00Z") * 1000  # Date.parse: UTC midnight (Nov 14 evening NY)
    assert datetime.fromordinal(d.local_day).date().isoformat() == "2023-11-15"
    naive = parse_js_date("2023-11-15T10:00:00", zone)  # no offset: local time
    assert naive is not None and naive.ms == ts("2023-11-15T15:00:00Z") * 1000
    assert parse_js_date("not a date", zone) is None


# --------------------------------------------------------------------------- pagination


@pytest.fixture
def many(start):
    def _many(**cfg: object) -> Env:
        env = start(**cfg)
        env.sim.set_agents([f"agent{i:03d}" for i in range(120)])
        for i in range(120):
            env.sim.add_session(
                f"agent{i:03d}", ts("2023-11-14T10:00:00Z"), ts("2023-11-14T10:00:00Z") + i + 1
            )
        return env

    return _many


def test_pagination_accepted(many):
    env = many(pagination="accepted")

    def page(**params: object) -> dict:
        r = env.history("2023-11-14", **params)
        assert r.status_code == 200, r.text
        return r.json()

    b = page()
    assert (b["count"], b["offset"], b["total"]) == (50, 0, 120)
    assert b["agents"][0] == {"availableTimeInSeconds": 1, "username": "agent000"}
    assert page(count=200)["count"] == 100  # clamped to API_Upper_Count_Limit
    assert page(count=0)["count"] == 120  # 0 = no limit (API_Allow_Infinite_Count)
    b = page(offset=100, count=50)
    assert (b["count"], b["offset"], b["total"]) == (20, 100, 120)
    assert b["agents"][0]["username"] == "agent100"
    assert page(offset=200)["agents"] == []


def test_pagination_rejected_has_no_way_to_page(many):
    env = many(pagination="rejected")
    for params in ({"count": 10}, {"offset": 0}, {"count": 0, "offset": 50}):
        r = env.history("2023-11-14", **params)
        assert r.status_code == 400
        assert r.json()["error"] == "must NOT have additional properties [invalid-params]"
    b = env.history("2023-11-14").json()
    assert (b["count"], b["offset"], b["total"]) == (50, 0, 120)  # 70 agents out of reach


def test_raised_default_count_returns_everyone(many):
    env = many(pagination="rejected", default_count=500, upper_count_limit=1000)
    b = env.history("2023-11-14").json()
    assert (b["count"], b["total"]) == (120, 120)


# --------------------------------------------------------------------------- rate limiter


def test_rate_limit_headers_429_and_window(start):
    env = start(rate_limit=3, rate_window=60.0)
    t0_ms = round(T0 * 1000)
    for remaining in (2, 1, 0):
        r = env.history("2023-11-15")
        assert r.status_code == 200
        assert r.headers["X-RateLimit-Limit"] == "3"
        assert r.headers["X-RateLimit-Remaining"] == str(remaining)
        assert r.headers["X-RateLimit-Reset"] == str(t0_ms + 60_000)
    r = env.history("2023-11-15")
    assert r.status_code == 429
    assert r.json() == {
        "success": False,
        "error": "Error, too many requests. Please slow down. You must wait 60 seconds before "
        "trying this endpoint again. [error-too-many-requests]",
    }
    assert r.headers["X-RateLimit-Remaining"] == "0"
    assert env.client.get(USERS).status_code == 200  # per route
    env.clock.advance(30.5)
    r = env.history("2023-11-15")
    assert r.status_code == 429
    assert "wait 30 seconds" in r.json()["error"]
    assert r.headers["X-RateLimit-Reset"] == str(t0_ms + 60_000)
    env.clock.advance(30)  # 60.5 s after the window opened: it restarts now
    r = env.history("2023-11-15")
    assert r.status_code == 200
    assert r.headers["X-RateLimit-Remaining"] == "2"
    assert r.headers["X-RateLimit-Reset"] == str(round(env.clock.now() * 1000) + 60_000)
    assert env.sim.requests[("history", 429)] == 2


def test_check_order_auth_rate_limit_validation_permission(start):
    env = start(rate_limit=2, forbidden=frozenset({"history"}))
    anonymous = httpx.Client(base_url=env.client.base_url)
    for _ in range(5):  # 401 comes first and does not consume the budget
        assert anonymous.get(HISTORY).status_code == 401
    anonymous.close()
    r = env.client.get(HISTORY)  # validation runs before the permission check
    assert r.status_code == 400
    assert r.headers["X-RateLimit-Remaining"] == "1"
    r = env.history("2023-11-15")
    assert r.status_code == 403
    assert r.headers["X-RateLimit-Remaining"] == "0"
    assert env.client.get(HISTORY).status_code == 429  # the limiter runs before validation


def test_rate_limit_can_be_disabled_at_runtime(start):
    env = start(rate_limit=1)
    assert env.history("2023-11-15").status_code == 200
    assert env.history("2023-11-15").status_code == 429
    env.sim.set_rate_limit(0)
    r = env.history("2023-11-15")
    assert r.status_code == 200 and "X-RateLimit-Limit" not in r.headers


# --------------------------------------------------------------------------- live status


def _live_cast(env: Env) -> None:
    sim = env.sim
    now = env.clock.now()
    sim.add_session("alice", now - 600, None, presence="away")
    sim.add_agent("bob", "Bob B")
    sim.add_agent("carol", "Carol C", email="carol@example.org")
    sim.set_live("carol", status="online", status_livechat="not-available")
    sim.add_agent("dave", "Dave D")
    sim.set_live("dave", status="offline", status_livechat="available")
    sim.add_session("Zed", now - 60, None, presence="busy")
    sim.add_session("eve", now - 60, now + 2)


def test_agents_status_chart_buckets_and_memo(start):
    env = start()
    _live_cast(env)
    expected = {"offline": 3, "away": 1, "busy": 1, "available": 1, "success": True}
    assert env.client.get(CHART).json() == expected
    env.clock.advance(3)  # eve went off, but the chart is memoized for 5 s
    assert env.client.get(CHART).json() == expected
    env.clock.advance(3)
    assert env.client.get(CHART).json() == {**expected, "offline": 4, "available": 0}
    assert env.client.get(CHART, params={"departmentId": "nope"}).json() == {"success": True}


def test_agents_status_with_no_agents_is_bare_success(start):
    env = start()
    assert env.client.get(CHART).json() == {"success": True}


def test_users_agent_route(start):
    env = start()
    _live_cast(env)
    b = env.client.get(USERS).json()
    assert (b["count"], b["offset"], b["total"], b["success"]) == (6, 0, 6, True)
    # default sort is by name (binary order: upper case first)
    assert [u["username"] for u in b["users"]] == ["bob", "carol", "dave", "Zed", "alice", "eve"]
    by_name = {u["username"]: u for u in b["users"]}
    assert set(by_name["carol"]) == {
        "_id",
        "username",
        "name",
        "status",
        "statusLivechat",
        "emails",
    }
    assert (by_name["alice"]["status"], by_name["alice"]["statusLivechat"]) == ("away", "available")
    assert (by_name["bob"]["status"], by_name["bob"]["statusLivechat"]) == (
        "offline",
        "not-available",
    )
    only = env.client.get(USERS, params={"onlyAvailable": "true"}).json()
    assert sorted(u["username"] for u in only["users"]) == ["Zed", "alice", "dave", "eve"]
    text = env.client.get(USERS, params={"text": "CAR"}).json()
    assert [u["username"] for u in text["users"]] == ["carol"]
    page = env.client.get(USERS, params={"count": 2, "offset": 1, "sort": '{"username":-1}'}).json()
    assert [u["username"] for u in page["users"]] == ["dave", "carol"]
    assert (page["count"], page["offset"], page["total"]) == (2, 1, 6)
    r = env.client.get(USERS, params={"sort": "{bad"})
    assert r.status_code == 400 and r.json()["errorType"] == "error-invalid-sort"


def test_users_agent_pagination_defaults(start):
    env = start()
    env.sim.set_agents([f"a{i:03d}" for i in range(130)])
    assert env.client.get(USERS).json()["count"] == 50
    assert env.client.get(USERS, params={"count": 500}).json()["count"] == 100
    assert env.client.get(USERS, params={"count": 0}).json()["count"] == 130


# --------------------------------------------------------------------------- faults


def test_transport_faults_and_counters(start):
    env = start()
    sim = env.sim
    sim.faults.inject("drop")
    with pytest.raises(httpx.RemoteProtocolError):
        env.history("2023-11-15")
    assert env.history("2023-11-15").status_code == 200
    sim.faults.inject("drop_mid_body")
    with pytest.raises(httpx.RemoteProtocolError):
        env.history("2023-11-15")
    sim.faults.inject("truncate")
    r = env.history("2023-11-15")
    assert r.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        r.json()
    sim.faults.inject("html")
    r = env.history("2023-11-15")
    assert r.status_code == 502 and r.headers["content-type"].startswith("text/html")
    assert "502 Bad Gateway" in r.text
    sim.faults.error_status = 503
    sim.faults.inject("error", times=2, route="agents")
    assert env.history("2023-11-15").status_code == 200  # other routes unaffected
    assert [env.client.get(USERS).status_code for _ in range(3)] == [503, 503, 200]
    sim.faults.set_rate("error", 1.0, route="agents_status")
    assert env.client.get(CHART).status_code == 503
    sim.faults.set_rate("error", 0.0, route="agents_status")
    assert env.client.get(CHART).status_code == 200
    counts = sim.requests
    assert counts[("history", "dropped")] == 1
    assert counts[("history", 200)] == 4  # incl. drop_mid_body and truncate
    assert counts[("history", 502)] == 1
    assert counts[("agents", 503)] == 2
    assert sim.request_total("history") == 6


def test_latency(start):
    env = start()
    env.sim.faults.latency = 0.2
    t = time.monotonic()
    assert env.client.get("/api/info").status_code == 200
    assert time.monotonic() - t >= 0.2


@pytest.fixture
def drift_env(start):
    env = start()
    for i in range(6):
        env.sim.add_session(f"u{i}", ts("2023-11-14T10:00:00Z"), ts("2023-11-14T10:10:00Z"))
        env.sim.add_session(f"u{i}", ts("2023-11-14T11:00:00Z"), ts("2023-11-14T11:05:00Z"))
    return env


def test_schema_drifts(drift_env):
    env = drift_env
    env.sim.faults.set_drift("missing_keys")
    agents = env.day("2023-11-14")["agents"]
    assert "availableTimeInSeconds" not in agents[0] and "username" not in agents[2]
    env.sim.faults.set_drift("null_stopped_at", "naive_dates")
    hist = env.day("2023-11-14")["agents"][0]["serviceHistory"]
    assert hist == [
        {"startedAt": "2023-11-14T10:00:00.000", "stoppedAt": "2023-11-14T10:10:00.000"},
        {"startedAt": "2023-11-14T11:00:00.000", "stoppedAt": None},
    ]
    env.sim.faults.set_drift("extra_fields", "short_total")
    b = env.day("2023-11-14")
    assert b["total"] == 5 and b["count"] == 6
    assert "departments" in b["agents"][0] and "_id" in b["agents"][0]["serviceHistory"][0]
    env.sim.faults.set_drift("double_stop")
    a = env.day("2023-11-14")["agents"][0]
    assert a["availableTimeInSeconds"] == 600 + 300 + 601
    assert a["serviceHistory"][0]["startedAt"] == a["serviceHistory"][1]["startedAt"]
    env.sim.faults.set_drift()
    assert env.day("2023-11-14")["agents"][0]["availableTimeInSeconds"] == 900


# --------------------------------------------------------------------------- generated data


def _sec(iso: str) -> float:
    return ts(iso)


def test_generated_data_is_consistent(start):
    clock = ManualClock(T0)
    env = start(clock=clock, agents=40, seed=3, days=3, timezone="Europe/Berlin")
    zone = Zone("Europe/Berlin")
    today = zone.day_of(round(T0 * 1000))
    for day in range(today - 3, today):
        iso = datetime.fromordinal(day).date().isoformat()
        body = env.day(iso)
        assert body["total"] == len(body["agents"]) > 0
        m0, m1 = zone.midnight(day) / 1000, zone.midnight(day + 1) / 1000
        for a in body["agents"]:
            spans = [(_sec(e["startedAt"]), _sec(e["stoppedAt"])) for e in a["serviceHistory"]]
            assert a["availableTimeInSeconds"] == sum(int(e - s) for s, e in spans)
            assert all(m0 <= s <= e < m1 for s, e in spans)
            assert all(spans[k][1] <= spans[k + 1][0] for k in range(len(spans) - 1))
            # against the ground truth: at most ~1 s lost per entry (truncation, 23:59:59)
            truth = 0.0
            for s, e in env.sim.sessions(a["username"], m0, m1):
                truth += min(e, m1) - max(s, m0)
            assert truth - len(spans) - 1 <= a["availableTimeInSeconds"] <= truth
    # live status agrees between the two live routes
    users = env.client.get(USERS, params={"count": 0}).json()["users"]
    chart = env.client.get(CHART).json()
    on = [u for u in users if u["statusLivechat"] == "available" and u["status"] != "offline"]
    assert chart["available"] + chart["away"] + chart["busy"] == len(on)
    assert chart["offline"] + len(on) == 40


def test_generated_today_only_grows(start):
    clock = ManualClock(ts("2023-11-15T09:00:00Z"))
    env = start(clock=clock, agents=30, seed=5, days=1)
    before = env.agents("2023-11-15")
    clock.advance(3 * 3600)
    after = env.agents("2023-11-15")
    assert set(before) <= set(after)
    grew = 0
    for name, a in before.items():
        old = a["serviceHistory"] or []
        new = after[name]["serviceHistory"] or []
        assert new[: len(old)] == old
        assert after[name]["availableTimeInSeconds"] >= a["availableTimeInSeconds"]
        grew += len(new) > len(old)
    assert grew > 0


def test_generated_data_is_deterministic_and_pages_match(start):
    a = start(agents=60, seed=9, days=2)
    b = start(agents=60, seed=9, days=2)
    whole_a = a.day("2023-11-14")
    assert whole_a == b.day("2023-11-14")
    pages = []
    offset = 0
    while True:
        r = a.history("2023-11-14", fullReport="true", count=25, offset=offset).json()
        pages.extend(r["agents"])
        offset += r["count"]
        if offset >= r["total"]:
            break
    assert pages == whole_a["agents"]
    assert a.day("2023-11-14") != start(agents=60, seed=10, days=2).day("2023-11-14")


# --------------------------------------------------------------------------- server and CLI


def test_stop_is_fast_with_idle_keepalive_connection():
    sim = Simulator(SimulatorConfig(agents=0, rate_limit=0), clock=ManualClock(T0))
    server = serve(sim)
    client = httpx.Client(base_url=server.url)
    assert client.get("/api/info").status_code == 200  # leaves a kept-alive connection
    t = time.monotonic()
    server.stop()
    assert time.monotonic() - t < 1.0
    client.close()


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="pagination"):
        SimulatorConfig(pagination="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timezone"):
        SimulatorConfig(timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="forbidden"):
        SimulatorConfig(forbidden=frozenset({"everything"}))
    sim = Simulator(SimulatorConfig(agents=0), clock=ManualClock(T0))
    with pytest.raises(ValueError, match="end"):
        sim.add_session("a", T0, T0 - 1)


def test_cli_serves_until_sigterm():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exporter.simulator.cli",
            "--listen",
            "127.0.0.1:0",
            "--agents",
            "5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        url = first.rsplit(" ", 1)[-1].strip()
        assert url.startswith("http://127.0.0.1:")
        lines = [proc.stdout.readline() for _ in range(3)]
        assert any("X-Auth-Token: sim-token" in line for line in lines)
        r = httpx.get(
            url + HISTORY, params={"start": "2023-11-14", "end": "2023-11-14"}, headers=AUTH
        )
        assert r.status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_rejects_bad_listen_address():
    from exporter.simulator.cli import main

    with pytest.raises(SystemExit) as e:
        main(["--listen", "nowhere"])
    assert e.value.code == 2


def test_open_documents_off_lists_agents_only_with_closed_entries(start):
    env = start(open_documents=False)
    env.sim.add_session("alice", ts("2023-11-15T09:00:00Z"), None)
    env.sim.add_session("bob", ts("2023-11-15T09:00:00Z"), ts("2023-11-15T09:30:00Z"))
    env.sim.add_session("bob", ts("2023-11-15T11:00:00Z"), None)
    body = env.day("2023-11-15")
    assert body["total"] == 1
    assert body["agents"] == [
        {
            "serviceHistory": [entry("2023-11-15T09:00:00.000Z", "2023-11-15T09:30:00.000Z")],
            "availableTimeInSeconds": 1800,
            "username": "bob",
        }
    ]
