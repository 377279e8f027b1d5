"""The fault matrix: every failure Rocket.Chat (or what stands in front of it) can produce.

Real HTTP against the simulator on 127.0.0.1, the real client and poller, one ManualClock for
everything (see tests/support/faultrig.py). For each fault the exporter must keep serving,
set `up` to 0, move the right counters, keep the last good snapshot exactly as it was until
`max_staleness` and then drop it, never publish a partial one, and recover on the first poll
after the fault clears.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from exporter.availability import local_midnight
from exporter.config import parse_config
from exporter.poller import start_pollers
from exporter.publisher import Publisher
from exporter.rocketchat.client import RocketChatClient
from exporter.simulator import Simulator, SimulatorConfig, serve
from exporter.web import landing_page
from tests.support.faultrig import (
    TOKEN,
    USER_ID,
    RewritingProxy,
    Rig,
    data_of,
    parse_page,
    warnings_from,
)
from tests.support.procs import wait_for

pytestmark = (
    pytest.mark.slow
)  # real threads and timeouts, real processes: full suite only (see docs/testing.md)

T_EVENING = datetime(2026, 3, 4, 20, 0, tzinfo=UTC).timestamp()


@pytest.fixture
def rig(request):
    made: list[Rig] = []

    def make(**kw) -> Rig:
        r = Rig(**kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.DEBUG, logger="exporter")
    return caplog


def check_fault(r: Rig, start_fault, stop_fault, reason: str, code: str, endpoint="history"):
    """The common contract of a fault that makes polls fail, as the issue states it.

    Good poll -> fault: up 0, the counters move, the data is exactly the last good snapshot,
    until max_staleness, then no data at all -> fault clears: the next poll is good again.
    """
    assert r.poll(), r.health().last_error
    good = r.data()
    assert good, "the healthy poll exported data"
    taken = r.value("last_success_timestamp_seconds")
    errors, requests = r.errors(reason), r.api(endpoint, code)
    start_fault()
    assert not r.poll(60)
    assert r.up() == 0
    assert r.errors(reason) == errors + 1, r.health().poll_errors
    assert r.api(endpoint, code) > requests, r.health().requests
    assert r.data() == good  # the last good snapshot, untouched: nothing partial
    # Still failing: the old snapshot stays exactly as it was while it is younger than
    # max_staleness, and is dropped once it is older; health stays.
    for _ in range(20):
        assert not r.poll(60)
        age = r.clock.now() - taken
        if age <= r.config.max_staleness:
            assert r.data() == good, age
        else:
            assert r.data() == {}, age
            break
    else:
        raise AssertionError("the snapshot never went stale")
    assert r.up() == 0 and r.value("last_success_timestamp_seconds") == taken
    assert r.errors(reason) >= errors + 2
    stop_fault()
    assert r.poll(60), r.health().last_error  # recovered within one poll
    assert r.up() == 1 and r.data()
    return r


# ---- transport and server faults ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "reason", "code"),
    [
        ("error", "server_error", "500"),  # 5xx from Rocket.Chat
        ("html", "server_error", "502"),  # a proxy's HTML error page
        ("drop", "network", "error"),  # connection closed without an answer
        ("drop_mid_body", "network", "error"),  # headers and half the body, then closed
        ("truncate", "invalid_response", "200"),  # complete answer, JSON cut in half
    ],
)
def test_transport_fault(rig, logs, kind, reason, code):
    r = rig()
    check_fault(
        r,
        lambda: r.sim.faults.set_rate(kind, 1.0),
        r.sim.faults.clear,
        reason,
        code,
    )
    # One warning for the whole outage (not one per poll), one note when it recovered.
    failed = [m for m in warnings_from(logs, "exporter.client") if "request failed" in m]
    assert len(failed) == 1 and reason in failed[0]
    assert sum("recovered" in rec.getMessage() for rec in logs.records) == 1
    # Retried a bounded number of times per poll: 3 attempts, then the poll gives up.
    r.sim.faults.set_rate(kind, 1.0)
    before = r.sim.request_total("history")
    assert not r.poll(60)
    assert r.sim.request_total("history") - before == 3


def test_a_short_5xx_burst_is_absorbed_by_retries(rig):
    r = rig()
    assert r.poll()
    r.sim.faults.inject("error", times=2, route="history")
    assert r.poll(60)  # two 500s, then the third attempt answers
    assert r.up() == 1 and r.api("history", "500") == 2
    assert r.errors("server_error") == 0


def test_503_burst_on_the_live_route_only(rig):
    r = rig()
    r.sim.faults.error_status = 503
    check_fault(
        r,
        lambda: r.sim.faults.set_rate("error", 1.0, route="agents"),
        r.sim.faults.clear,
        "server_error",
        "503",
        endpoint="agents",
    )


def test_connection_refused_then_back_on_the_same_port(rig, logs):
    r = rig()
    port = r.server.port

    def down():
        r.server.stop()

    def up_again():
        # Rocket.Chat restarted: same address, same data.
        from exporter.simulator.server import SimulatorServer

        r.server = SimulatorServer(r.sim, "127.0.0.1", port)

    check_fault(r, down, up_again, "network", "error")
    assert "Connect" in " ".join(warnings_from(logs))  # ConnectError named in the log


def test_slow_answers_beyond_the_timeout(rig):
    r = rig(timeout=0.2)
    started = time.monotonic()
    check_fault(
        r,
        # Beyond 3 x timeout: the bound of a count=0 request (a whole day in one answer).
        lambda: setattr(r.sim.faults, "latency", 0.8),
        lambda: setattr(r.sim.faults, "latency", 0.0),
        "network",
        "error",
    )
    # 3 attempts of 0.2 s per failed poll; the backoff between them is simulated time.
    assert time.monotonic() - started < 15


def test_timeout_message_names_the_timeout(rig):
    r = rig(timeout=0.2)
    assert r.poll()
    r.sim.faults.latency = 0.8
    assert not r.poll(60)
    # The history day is one count=0 request: it gets 3 x timeout.
    assert "no answer within 0.6 s" in r.health().last_error
    assert "raise timeout" in r.health().last_error


def test_proxy_login_page_with_200_is_an_invalid_answer(rig):
    r = rig()
    proxy = RewritingProxy(r.server)
    login = b"<html><head><title>Sign in - Corp SSO</title></head><body>...</body></html>"

    def login_page(path, status, headers, body):
        return 200, {"Content-Type": "text/html"}, login

    try:
        r.use_url(proxy.url)
        check_fault(
            r,
            lambda: setattr(proxy, "rewrite", login_page),
            lambda: setattr(proxy, "rewrite", None),
            "invalid_response",
            "200",
        )
        proxy.rewrite = login_page
        assert not r.poll(60)
        error = r.health().last_error
        assert "Sign in - Corp SSO" in error and "not a proxy or login page" in error
        assert "<html>" not in error  # the page's title, not its markup
    finally:
        proxy.close()


# ---- rate limiting -----------------------------------------------------------------------------


def _history_requests(r: Rig, since: int) -> list[tuple[float, int, dict[str, str], str]]:
    """(time, status, answer headers, target) of every history request since `since`."""
    return [
        (t, status, r.requests.headers[since + i], target)
        for i, (t, route, status, target) in enumerate(r.requests.since(since))
        if route == "available-for-service-history"
    ]


def _assert_no_request_before_reset(entries) -> None:
    """After each 429, the next request came no earlier than the X-RateLimit-Reset it named."""
    for (t, status, headers, _), (t_next, *_rest) in zip(entries, entries[1:], strict=False):
        if status == 429:
            reset = int(headers["X-RateLimit-Reset"]) / 1000
            assert t_next >= reset, (t, reset, t_next)


def test_429_waits_for_the_reset_then_succeeds(rig):
    r = rig(rate_limit=10, rate_window=60)
    assert r.poll()
    start = len(r.requests)
    r.burn()
    assert r.poll(1)  # a 429, a wait until X-RateLimit-Reset, then the retry answers
    ours = [e for e in _history_requests(r, start) if "fullReport" in e[3]]
    assert [e[1] for e in ours] == [429, 200]
    _assert_no_request_before_reset(ours)
    assert r.api("history", "429") == 1 and r.errors("rate_limited") == 0 and r.up() == 1


def test_429_storm_fails_the_poll_without_a_request_before_any_reset(rig, logs):
    storm = {"on": True}

    def sleep_and_storm(seconds: float) -> None:
        r.clock.advance(seconds)
        if storm["on"]:
            r.burn()  # the other client empties every new window

    r = rig(rate_limit=10, rate_window=60, sleep=sleep_and_storm)
    assert r.poll()
    good = r.data()
    start = len(r.requests)
    r.burn()
    assert not r.poll(1)
    assert r.up() == 0 and r.errors("rate_limited") == 1 and r.data() == good
    ours = [e for e in _history_requests(r, start) if "fullReport" in e[3]]
    assert [e[1] for e in ours] == [429, 429, 429]  # bounded: 3 attempts, then give up
    _assert_no_request_before_reset(ours)
    assert sum("rate limited" in m for m in warnings_from(logs, "exporter.client")) == 1
    storm["on"] = False
    assert r.poll(60) and r.up() == 1


def test_retry_after_without_reset_header_is_honoured(rig):
    r = rig()
    proxy = RewritingProxy(r.server)
    try:
        r.use_url(proxy.url)
        assert r.poll()
        calls = {"n": 0}

        def once_429(path, status, headers, body):
            if "available-for-service-history" in path and calls["n"] == 0:
                calls["n"] += 1
                return 429, {"Retry-After": "42", "Content-Type": "application/json"}, b"{}"
            return None

        proxy.rewrite = once_429
        before = r.clock.now()
        assert r.poll()
        assert r.clock.now() - before >= 42  # waited what Retry-After asked, then succeeded
        assert r.api("history", "429") == 1
    finally:
        proxy.close()


# ---- final errors: auth, permission, licence, pagination ---------------------------------------


@pytest.mark.parametrize(
    ("name", "start", "stop", "reason", "code", "needle"),
    [
        (
            "token revoked",
            lambda sim: sim.revoke_token(),
            lambda sim: sim.set_credentials(USER_ID, TOKEN),
            "auth",
            "401",
            "credentials rejected",
        ),
        (
            "permission removed",
            lambda sim: sim.forbid("history"),
            lambda sim: sim.forbid("history", False),
            "permission",
            "403",
            "view-livechat-manager",
        ),
        (
            "licence lost",
            lambda sim: setattr(sim, "licence", False),
            lambda sim: setattr(sim, "licence", True),
            "licence",
            "400",
            "Enterprise licence required",
        ),
    ],
)
def test_final_error_logged_once_counted_and_not_retried(
    rig, logs, name, start, stop, reason, code, needle
):
    r = rig()
    assert r.poll()
    n_before = len(r.requests)
    check_fault(r, lambda: start(r.sim), lambda: stop(r.sim), reason, code)
    # No retry storm: each failed poll made exactly one request (the first one is refused
    # and the poll stops there), and the recovering poll its usual two.
    failing = [e for e in r.requests.since(n_before) if e[2] == int(code)]
    failed_polls = r.errors(reason)
    assert len(failing) == failed_polls
    messages = [m for m in warnings_from(logs, "exporter") if needle in m]
    assert len(messages) == 1, messages  # the right message, once for the whole outage
    assert sum("recovered" in rec.getMessage() for rec in logs.records) == 1


def test_permission_removed_on_the_live_route_falls_back_to_the_chart(rig, logs):
    r = rig()
    assert r.poll()
    assert r.value("agent_available", agent=_some_agent(r)) is not None
    r.sim.forbid("agents")
    assert r.poll(60)  # not a failure: counts from the agents-status chart
    assert r.up() == 1 and r.api("agents", "403") == 1
    assert r.value("agent_available", agent=_some_agent(r)) is None  # per-agent status gone
    assert (
        sum(r.value("agents", status=s) or 0 for s in ("available", "away", "busy", "offline")) == 8
    )
    for _ in range(12):
        assert r.poll(60)
    # The per-agent route is re-tried every 10th poll, not on every poll.
    assert r.api("agents", "403") == 2
    assert sum("agents-status chart" in m for m in warnings_from(logs)) == 1


def _some_agent(r: Rig) -> str:
    return r.sim.agents[0].username


def test_pagination_rejected_warns_once_exports_truncation_and_does_not_storm(rig, logs):
    r = rig(agents=60, pagination="rejected", off_day_rate=0.0, start=T_EVENING)
    for _ in range(5):
        assert r.poll(60)
    truncated = r.value("agents_truncated")
    assert truncated and truncated > 0  # more agents today than Rocket.Chat's page of 50
    assert r.sim.requests[("history", 400)] == 1  # learned once; then no count/offset
    warnings = [m for m in warnings_from(logs) if "ignores pagination" in m]
    assert len(warnings) == 1, warnings
    assert f"received 50 of {50 + int(truncated)}" in warnings[0]
    assert "Upper Count Limit" in warnings[0]
    assert r.errors("pagination") == 0 and r.up() == 1


# ---- schema drift ------------------------------------------------------------------------------


def _fresh_pair(rig, **kw):
    """Two fresh exporters on one simulator at one instant: a reference and one under test."""
    r = rig(**kw)
    other = Publisher(["rc"], r.config.max_staleness)
    return r, other


@pytest.mark.parametrize("drift", ["naive_dates", "extra_fields"])
def test_harmless_drift_gives_the_same_numbers(rig, drift):
    r, reference = _fresh_pair(rig, agents=12, off_day_rate=0.0)
    ref = r.new_poller(reference)
    assert ref.run_poll()
    r.sim.faults.set_drift(drift)
    assert r.poll()
    expected = data_of(parse_page(reference.page(r.clock.now())))
    assert r.data() == expected
    ref.close()


def test_lossy_drift_is_counted_not_fatal(rig):
    r = rig(agents=12, off_day_rate=0.0, start=T_EVENING)
    r.sim.faults.set_drift("missing_keys", "null_stopped_at", "double_stop")
    assert r.poll()
    assert r.up() == 1
    assert (r.value("history_anomalies", kind="skipped_agents") or 0) > 0
    assert (r.value("history_anomalies", kind="skipped_entries") or 0) > 0
    assert (r.value("history_anomalies", kind="merged_entries") or 0) > 0
    for key, value in r.data().items():
        if key[0] == "agent_available_ratio":
            assert 0 <= value <= 1, key


def test_total_smaller_than_the_list(rig):
    r = rig(agents=12, off_day_rate=0.0)
    r.sim.faults.set_drift("short_total")
    assert r.poll()
    assert r.value("agents_truncated") == 0  # never negative, nobody lost
    active = r.value("agents_active", window="24h")
    r.sim.faults.clear()
    assert r.poll(1)
    assert r.value("agents_active", window="24h") == active


def test_empty_agents_list(rig):
    r = rig(agents=0)
    assert r.poll()
    assert r.up() == 1
    assert r.value("agents_active", window="today") == 0
    assert r.value("unstaffed_seconds", window="1h") == 3600
    assert not [k for k in r.data() if k[0].startswith("agent_")]


def _mutate_history(mutate):
    def rewrite(path, status, headers, body):
        if "available-for-service-history" not in path or status != 200:
            return None
        doc = json.loads(body)
        mutate(doc)
        return status, headers, json.dumps(doc).encode()

    return rewrite


def _wrong_types(doc: dict) -> None:
    agents = doc["agents"]
    for i, agent in enumerate(agents):
        if i % 4 == 0:
            agent["availableTimeInSeconds"] = "3600"  # a string, not a number
        elif i % 4 == 1:
            agent["username"] = 12345  # not a string
        elif i % 4 == 2:
            agent["serviceHistory"] = {"startedAt": 1}  # an object, not a list
        elif agent.get("serviceHistory"):
            agent["serviceHistory"][0]["startedAt"] = 1709546400  # a number, not a date
    doc["total"] = "many"


def test_wrong_types_inside_the_answer_are_skipped_and_counted(rig):
    r = rig(agents=12, off_day_rate=0.0, start=T_EVENING)
    proxy = RewritingProxy(r.server)
    try:
        r.use_url(proxy.url)
        proxy.rewrite = _mutate_history(_wrong_types)
        assert r.poll(), r.health().last_error
        assert r.up() == 1
        assert (r.value("history_anomalies", kind="skipped_agents") or 0) >= 3
        assert (r.value("history_anomalies", kind="skipped_entries") or 0) >= 3
    finally:
        proxy.close()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda doc: doc.update(agents={"alice": {}}),  # agents is not a list
        lambda doc: doc.pop("agents"),  # no agents at all
        lambda doc: doc.update(success=False, error="boom"),
    ],
    ids=["agents-not-a-list", "agents-missing", "success-false"],
)
def test_wrong_type_of_the_whole_answer_is_an_invalid_response(rig, mutate):
    r = rig()
    proxy = RewritingProxy(r.server)
    try:
        r.use_url(proxy.url)
        check_fault(
            r,
            lambda: setattr(proxy, "rewrite", _mutate_history(mutate)),
            lambda: setattr(proxy, "rewrite", None),
            "invalid_response",
            "200",
        )
    finally:
        proxy.close()


# ---- partial polls -----------------------------------------------------------------------------


def test_a_poll_failing_after_some_requests_publishes_nothing(rig):
    r = rig()
    assert r.poll()
    good = r.data()
    taken = r.value("last_success_timestamp_seconds")
    r.sim.faults.set_rate("error", 1.0, route="agents")  # history answers, live status fails
    assert not r.poll(60)
    assert r.data() == good
    assert r.api("history", "200") >= 2  # the day was fetched (and cached) ...
    assert r.value("last_success_timestamp_seconds") == taken  # ... but nothing published


# ---- several servers ---------------------------------------------------------------------------


def test_one_server_down_does_not_delay_the_others(tmp_path):
    """Real threads, real clock: a hanging server and a refusing one; the healthy one is
    polled on schedule meanwhile."""
    gate = threading.Event()  # the hanging server answers nothing until the test opens it
    healthy_sim = Simulator(
        SimulatorConfig(agents=3, rate_limit=0, user_id=USER_ID, auth_token=TOKEN)
    )
    hanging_sim = Simulator(
        SimulatorConfig(agents=3, rate_limit=0, user_id=USER_ID, auth_token=TOKEN)
    )
    held = hanging_sim.handle

    def hang(*args, **kwargs):
        gate.wait(30)
        return held(*args, **kwargs)

    hanging_sim.handle = hang  # type: ignore[method-assign]
    healthy, hanging = serve(healthy_sim), serve(hanging_sim)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{s.getsockname()[1]}"  # closed when the block ends
    servers = [
        {"name": "ok", "url": healthy.url},
        {"name": "hanging", "url": hanging.url, "timeout": 20},
        {"name": "refused", "url": refused},
    ]
    config = parse_config(
        {
            "poll_interval": "0.5s",
            "windows": ["1h"],
            "servers": [{**s, "user_id": USER_ID, "auth_token": TOKEN} for s in servers],
        }
    )
    publisher = Publisher(["ok", "hanging", "refused"], config.max_staleness)
    stop = threading.Event()
    threads = start_pollers(config, publisher, stop)
    try:
        wait_for(lambda: healthy_sim.request_total("agents") >= 1, 10, "first healthy poll")
        started = healthy_sim.request_total("agents")
        # The hanging server's poller sits in its first request for as long as the gate is
        # closed; had it held the healthy one up, these polls could never happen.
        wait_for(lambda: healthy_sim.request_total("agents") >= started + 4, 10, "4 more polls")
        page = parse_page(publisher.page(time.time()))
        assert page[("up", frozenset({("server", "ok")}))] == 1
        hanging_up = ("up", frozenset({("server", "hanging")}))
        assert hanging_up not in page  # still in its first poll: the gate is closed
        gate.set()
        wait_for(
            lambda: parse_page(publisher.page(time.time())).get(hanging_up) == 1,
            10,
            "the hanging server's poll to finish once it answers",
        )
        # The refused server's first poll ends after its retries and backoff; until then its
        # `up` is absent (no poll has finished), then 0.
        refused_up = ("up", frozenset({("server", "refused")}))
        wait_for(
            lambda: parse_page(publisher.page(time.time())).get(refused_up) == 0,
            10,
            "up == 0 for the refused server",
        )
    finally:
        gate.set()
        stop.set()
        for t in threads:
            t.join(timeout=10)
        healthy.stop()
        hanging.stop()


# ---- secrets rotated, config edited ------------------------------------------------------------


def test_secret_file_rotated_while_running(rig, tmp_path, logs):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    r = rig()
    server = dict(
        name="rc",
        url=r.server.url,
        user_id=USER_ID,
        auth_token_file=str(token_file),
        timeout=2.0,
    )
    r.config = parse_config({"poll_interval": "60s", "windows": ["1h"], "servers": [server]})
    r.poller.close()
    r.poller = r.new_poller()
    assert r.poll()
    # The token is rotated in Rocket.Chat first, the file a little later (a secret sync).
    new = "tok-ROTATED-5e1f9d2c7a"
    r.sim.set_credentials(USER_ID, new)
    assert not r.poll(60) and r.errors("auth") == 1
    token_file.write_text(new + "\n")
    assert r.poll(60), r.health().last_error  # picked up without a restart
    assert r.up() == 1
    for text in [r.page().decode(), r.health().last_error, *map(str, logs.records)]:
        assert new not in text and TOKEN not in text


# ---- time --------------------------------------------------------------------------------------


def _t(tz: str, *args, fold: int = 0) -> float:
    return datetime(*args, tzinfo=ZoneInfo(tz), fold=fold).timestamp()


BERLIN = "Europe/Berlin"


def test_dst_fall_back_night_in_the_servers_zone(rig):
    """Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET; the day is 25 hours long."""
    r = rig(start=_t(BERLIN, 2026, 10, 24, 23, 0), agents=0, sim_tz=BERLIN)
    # 01:30 CEST to 02:30 CET: 2 real hours, across the repeated hour.
    r.sim.add_session(
        "alice", _t(BERLIN, 2026, 10, 25, 1, 30), _t(BERLIN, 2026, 10, 25, 2, 30, fold=1)
    )
    assert r.poll()
    while r.clock.now() < _t(BERLIN, 2026, 10, 25, 4, 0):
        assert r.poll(300), r.health().last_error
        today = r.value("unstaffed_seconds", window="today")
        elapsed = r.clock.now() - local_midnight(r.clock.now(), ZoneInfo(BERLIN))
        assert today is not None and 0 <= today <= elapsed
    # 04:00 CET is 5 real hours after midnight CEST.
    assert r.value("agent_available_seconds", agent="alice", window="today") == 7200
    assert r.value("agent_available_ratio", agent="alice", window="today") == 7200 / 18000
    assert r.value("agent_reported_available_seconds", agent="alice", window="today") == 7200
    r.clock.set(_t(BERLIN, 2026, 10, 26, 12, 0))
    assert r.poll()
    assert r.value("agent_available_seconds", agent="alice", window="yesterday") == 7200
    assert r.value("unstaffed_seconds", window="yesterday") == 25 * 3600 - 7200


def test_dst_spring_forward_day_in_the_servers_zone(rig):
    """Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST; the day is 23 hours long."""
    r = rig(start=_t(BERLIN, 2026, 3, 29, 1, 0), agents=0, sim_tz=BERLIN)
    r.sim.add_session("alice", _t(BERLIN, 2026, 3, 29, 1, 30), _t(BERLIN, 2026, 3, 29, 3, 30))
    assert r.poll()
    r.clock.set(_t(BERLIN, 2026, 3, 29, 4, 0))
    assert r.poll()
    assert r.value("agent_available_seconds", agent="alice", window="today") == 3600
    assert r.value("unstaffed_seconds", window="today") == 3 * 3600 - 3600
    r.clock.set(_t(BERLIN, 2026, 3, 30, 9, 0))
    assert r.poll()
    assert r.value("unstaffed_seconds", window="yesterday") == 23 * 3600 - 3600


def test_midnight_passes_during_a_poll(rig):
    """The day changes between the history requests and the live-status request: the
    snapshot must still cover the new day completely, as a fresh exporter's would."""
    jump: dict[str, float] = {}

    class Rollover(RocketChatClient):
        def fetch_live_status(self):
            if jump:
                r.clock.set(jump.pop("to"))
            return super().fetch_live_status()

    day = datetime(2026, 3, 4, tzinfo=UTC)
    r = rig(start=day.replace(hour=22).timestamp(), agents=0, client_cls=Rollover)
    r.sim.add_session(
        "bob", day.replace(hour=22).timestamp(), day.replace(hour=23, minute=30).timestamp()
    )
    r.sim.add_session("alice", day.replace(hour=23).timestamp())  # open across midnight
    r.clock.set(day.replace(hour=23, minute=59).timestamp())
    assert r.poll()
    r.clock.set(day.replace(hour=23, minute=59, second=59).timestamp())
    jump["to"] = day.replace(day=5, second=2).timestamp()  # 00:00:02 on the 5th
    assert r.poll()
    assert r.clock.now() == day.replace(day=5, second=2).timestamp()
    # Rocket.Chat's midnight job closed alice's session at 23:59:59 and reopened it.
    assert r.value("agent_reported_available_seconds", agent="alice", window="yesterday") == 3599
    assert r.value("agent_reported_available_seconds", agent="alice", window="today") == 0
    assert r.value("agent_reported_available_seconds", agent="bob", window="yesterday") == 5400
    # The same numbers as an exporter started at this instant (open sessions aside).
    reference = Publisher(["rc"], r.config.max_staleness)
    fresh = r.new_poller(reference)
    assert fresh.run_poll()
    fresh.close()
    ref = data_of(parse_page(reference.page(r.clock.now())))
    ours = r.data()
    for key, value in ref.items():
        if key[0] == "agent_reported_available_seconds" or ("agent", "bob") in key[1]:
            assert ours.get(key) == value, key


def _skew_scenario(rig, skew: float):
    """Polls every minute from 23:40 to 00:20 (Rocket.Chat's clock) with the exporter's
    clock off by `skew` seconds; bob's session closes at 23:58, two minutes before midnight."""
    day = datetime(2026, 3, 4, tzinfo=UTC)
    r = rig(
        start=day.replace(hour=23, minute=40).timestamp(), agents=0, skew=skew, include_open=False
    )
    r.sim.add_session(
        "bob",
        day.replace(hour=23, minute=50).timestamp(),
        day.replace(hour=23, minute=58).timestamp(),
    )
    r.sim.add_session("carol", day.replace(hour=20).timestamp(), day.replace(hour=21).timestamp())
    assert r.poll()
    while r.clock.now() < day.replace(day=5, minute=20).timestamp():
        assert r.poll(60), r.health().last_error
    return r


@pytest.mark.parametrize("skew", [600.0, -600.0, 20.0])
def test_exporter_clock_ahead_or_behind_rocketchat(rig, logs, skew):
    r = _skew_scenario(rig, skew)
    # Yesterday (the 4th) is complete: bob's 8 minutes were not lost to a day the exporter
    # closed by its own clock while Rocket.Chat's was still running.
    assert r.value("agent_reported_available_seconds", agent="bob", window="yesterday") == 480
    assert r.value("agent_available_seconds", agent="bob", window="yesterday") == 480
    assert r.value("agent_available_seconds", agent="carol", window="yesterday") == 3600
    clock_warnings = [m for m in warnings_from(logs) if "clock" in m]
    if abs(skew) >= 60:
        assert len(clock_warnings) == 1, clock_warnings
        assert ("ahead" if skew > 0 else "behind") in clock_warnings[0]
        assert any("clock is" in w for w in r.health().warnings)
    else:
        assert clock_warnings == [] and r.health().warnings == ()


def test_server_zone_differs_from_the_configured_one(rig, logs):
    """Rocket.Chat runs in New York, the config says UTC: its midnight split (23:59:59 then
    00:00:00 server-local) does not fall on UTC midnight. Warn once, naming the offset."""
    ny = "America/New_York"
    r = rig(start=_t(ny, 2026, 3, 4, 9, 0), agents=0, sim_tz=ny, tz="UTC")
    r.sim.add_session("alice", _t(ny, 2026, 3, 3, 23, 0), _t(ny, 2026, 3, 4, 1, 0))
    r.sim.add_session("bob", _t(ny, 2026, 3, 3, 22, 0), _t(ny, 2026, 3, 4, 2, 0))
    for _ in range(3):
        assert r.poll(60)
    found = [m for m in warnings_from(logs) if "configured timezone" in m]
    assert len(found) == 1, found
    assert "UTC-05:00" in found[0] and "UTC" in found[0]
    # Also on the landing page, for whoever looks there rather than in the logs.
    page = landing_page(r.publisher, r.exporter_now()).decode()
    assert "midnight UTC-05:00, not in the configured timezone UTC" in page


@pytest.mark.parametrize("zone", ["Europe/Berlin", "Asia/Kolkata", "America/Santiago"])
def test_matching_zone_gives_no_zone_warning(rig, logs, zone):
    r = rig(start=_t(zone, 2026, 3, 4, 9, 0), agents=0, sim_tz=zone)
    r.sim.add_session("alice", _t(zone, 2026, 3, 3, 23, 0), _t(zone, 2026, 3, 4, 1, 0))
    assert r.poll()
    assert r.value("agent_available_seconds", agent="alice", window="today") == 3600
    assert not [m for m in warnings_from(logs) if "configured timezone" in m]


# ---- through the real exporter process ---------------------------------------------------------


def _scrape(url: str):
    from tests.support.procs import http_get

    status, body = http_get(url + "/metrics")
    assert status == 200
    return parse_page(body)


def _rc(samples, name: str, **labels: str):
    return samples.get((name, frozenset({"server": "rc", **labels}.items())))


def test_real_process_fault_staleness_rotation_and_bad_config_edit(tmp_path):
    """The exporter as a user runs it (real clock, polls every 0.3 s): a revoked token, the
    staleness limit, a rotated token file, and a config file broken while it runs."""
    from tests.support.procs import start_exporter

    sim = Simulator(SimulatorConfig(agents=4, rate_limit=0, user_id=USER_ID, auth_token=TOKEN))
    server = serve(sim)
    (tmp_path / "token").write_text(TOKEN + "\n")
    cfg = tmp_path / "config.yaml"
    good_config = (
        "poll_interval: 0.3s\nmax_staleness: 1.5s\nwindows: [1h, today]\nservers:\n"
        f"  - name: rc\n    url: {server.url}\n    user_id: {USER_ID}\n"
        "    auth_token_file: token\n"
    )
    cfg.write_text(good_config)
    proc, url = start_exporter(cfg, tmp_path)
    try:
        wait_for(lambda: _rc(_scrape(url), "up") == 1, 30, "up")
        data = data_of(_scrape(url))
        assert data
        # Token revoked: up 0, auth errors counted, the last data kept while fresh...
        sim.revoke_token()
        wait_for(lambda: _rc(_scrape(url), "up") == 0, 10, "up 0")
        first = _scrape(url)
        assert _rc(first, "poll_errors_total", reason="auth") >= 1
        # ...then dropped once older than max_staleness; /metrics keeps answering.
        wait_for(lambda: not data_of(_scrape(url)), 10, "stale data dropped")
        assert _rc(_scrape(url), "up") == 0
        # The token is rotated: Rocket.Chat and the file; picked up without a restart.
        new = "tok-ROTATED-in-process-77a1"
        sim.set_credentials(USER_ID, new)
        (tmp_path / "token").write_text(new + "\n")
        wait_for(lambda: _rc(_scrape(url), "up") == 1, 10, "recovered after rotation")
        assert data_of(_scrape(url))
        # A bad edit of the config file: the running exporter is not affected (it does not
        # reload, SIGHUP included); a new process refuses to start with exit code 2.
        cfg.write_text(good_config.replace("poll_interval: 0.3s", "poll_interval: fast"))
        proc.proc.send_signal(signal.SIGHUP)
        polls = sim.request_total("agents")
        wait_for(lambda: sim.request_total("agents") >= polls + 3, 10, "still polling")
        assert proc.alive() and _rc(_scrape(url), "up") == 1
        assert "configuration is not reloaded" in proc.log()
        result = subprocess.run(
            [sys.executable, "-m", "exporter", "--config.file", str(cfg)],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert result.returncode == 2 and "poll_interval" in result.stderr
    finally:
        proc.stop()
        server.stop()
    log = proc.log()
    assert log.count("credentials rejected") == 1  # once for the outage, not once per poll
    assert TOKEN not in log and new not in log and USER_ID not in log
