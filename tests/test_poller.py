"""The poller with an in-process fake client: all-or-nothing snapshots, health, streaks."""

from __future__ import annotations

import threading
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from exporter.config import parse_config
from exporter.model import AgentDay, AgentLive, DayHistory, Interval, LiveStatus
from exporter.poller import ServerPoller
from exporter.publisher import Publisher
from exporter.rocketchat.errors import RocketChatError

UTC = ZoneInfo("UTC")
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC).timestamp()


class FakeClient:
    def __init__(self, server, *, on_request=None, stop=None, clock=None, **_):
        self.on_request = on_request
        self.fail_history: RocketChatError | None = None
        self.fail_live: RocketChatError | None = None
        self.available = {"alice"}
        self.history_calls: list[date] = []
        self.min_poll_interval = 0.0
        self.clock_skew = 0.0

    def fetch_history_day(self, day: date) -> DayHistory:
        self.history_calls.append(day)
        self.on_request("history", "200")
        if self.fail_history:
            raise self.fail_history
        start = datetime(day.year, day.month, day.day, 9, tzinfo=UTC).timestamp()
        agents = {
            "alice": AgentDay("alice", (Interval(start, start + 3600),), 3600),
            "bob": AgentDay("bob", (Interval(start + 1800, start + 2400),), 600),
        }
        return DayHistory(day=day, agents=agents, total=2)

    def fetch_live_status(self) -> LiveStatus:
        if self.fail_live:
            raise self.fail_live
        agents = tuple(AgentLive(n, "online", n in self.available) for n in ("alice", "bob"))
        return LiveStatus(agents=agents, counts={})

    def fetch_info(self):
        return {"version": "7.10.0"}

    def close(self):
        pass


@pytest.fixture
def poller():
    config = parse_config(
        {
            "poll_interval": "60s",
            "windows": ["1h", "24h", "7d", "today"],
            "servers": [
                {"name": "main", "url": "http://127.0.0.1:1", "user_id": "u", "auth_token": "t"}
            ],
        }
    )
    clock = [NOW]
    pub = Publisher(["main"], config.max_staleness)
    p = ServerPoller(
        config.servers[0],
        config,
        pub,
        stop=threading.Event(),
        clock=lambda: clock[0],
        client_factory=FakeClient,
    )
    return p, pub, clock


def test_first_poll_fills_the_cache_then_only_today(poller):
    p, pub, clock = poller
    assert p.run_poll()
    assert len(p.client.history_calls) == p.config.history_days
    p.client.history_calls.clear()
    clock[0] += 60
    assert p.run_poll()
    assert p.client.history_calls == [date(2026, 11, 25)]
    page = pub.page(clock[0]).decode()
    assert 'rocketchat_omnichannel_up{server="main"} 1' in page
    # today: alice 09:00-10:00 = 3600 s, plus her open session since the first poll (12:00).
    assert 'agent_available_seconds{server="main",agent="alice",window="today"} 3660' in page
    assert 'agent_available_seconds{server="main",agent="bob",window="today"} 600' in page
    assert 'agent_open_session_seconds{server="main",agent="alice"} 60' in page
    assert (
        'rocketchat_omnichannel_api_requests_total{server="main",endpoint="history",code="200"}'
        in page
    )


def test_failed_poll_keeps_last_good_snapshot_and_counts_the_error(poller):
    p, pub, clock = poller
    assert p.run_poll()
    before = pub.page(clock[0]).decode()
    clock[0] += 60
    p.client.fail_live = RocketChatError("permission", "403 from Rocket.Chat", 403)
    assert not p.run_poll()
    page = pub.page(clock[0]).decode()
    assert 'rocketchat_omnichannel_up{server="main"} 0' in page
    assert 'poll_errors_total{server="main",reason="permission"} 1' in page
    assert f'last_success_timestamp_seconds{{server="main"}} {int(NOW)}' in page
    # the data lines are exactly the last good ones
    data = [line for line in before.splitlines() if "agent_available_seconds{" in line]
    assert data and all(line in page for line in data)


def test_failed_live_status_neither_extends_nor_ends_a_streak(poller):
    p, _pub, clock = poller
    p.run_poll()
    streak = p.streaks["alice"]
    clock[0] += 60
    p.client.fail_live = RocketChatError("server_error", "502", 502)
    p.run_poll()
    assert p.streaks["alice"] == streak
    p.client.fail_live = None
    p.client.available = set()
    clock[0] += 60
    p.run_poll()
    assert "alice" not in p.streaks


def test_effective_interval_stretches_to_the_rate_limit(poller):
    p, pub, clock = poller
    p.client.min_poll_interval = 150.0
    p.run_poll()
    assert 'poll_interval_seconds{server="main"} 150' in pub.page(clock[0]).decode()


def test_a_render_bug_is_counted_and_the_old_page_kept(poller, monkeypatch, caplog):
    import exporter.publisher as publisher

    p, pub, clock = poller
    assert p.run_poll()
    good = pub.page(clock[0]).decode()
    real = publisher.render_server

    def broken(view, *a):
        if view.snapshot is not None and view.snapshot.taken_at == clock[0]:
            raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
        return real(view, *a)

    monkeypatch.setattr(publisher, "render_server", broken)
    clock[0] += 60
    assert not p.run_poll()  # did not raise
    page = pub.page(clock[0]).decode()
    assert 'rocketchat_omnichannel_up{server="main"} 0' in page
    assert 'poll_errors_total{server="main",reason="internal"} 1' in page
    data = [line for line in good.splitlines() if "agent_available_seconds{" in line]
    assert data and all(line in page for line in data)
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1 and "publish failed" in tracebacks[0].getMessage()
    monkeypatch.setattr(publisher, "render_server", real)
    clock[0] += 60
    assert p.run_poll()  # recovers on the next poll


def test_watchdog_reports_a_stuck_poller_thread(monkeypatch):
    """Real thread and clock: a poll that hangs (here in building the snapshot) turns `up` 0
    and /readyz 503 once its heartbeat deadline passes; it recovers when the poll goes on."""
    import time

    import exporter.poller as poller_module
    from exporter.poller import start_pollers
    from tests.support.procs import wait_for

    config = parse_config(
        {
            "poll_interval": "0.2s",
            "windows": ["1h"],
            "servers": [
                {"name": "main", "url": "http://127.0.0.1:1", "user_id": "u", "auth_token": "t"}
            ],
        }
    )
    monkeypatch.setattr(ServerPoller, "_grace", lambda self: 0.5)
    gate = threading.Event()
    gate.set()
    real = poller_module.build_snapshot

    def maybe_hang(*args, **kwargs):
        gate.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(poller_module, "build_snapshot", maybe_hang)
    pub = Publisher(["main"], config.max_staleness)
    stop = threading.Event()
    threads = start_pollers(config, pub, stop, client_factory=FakeClient)
    up = b'rocketchat_omnichannel_up{server="main"} '
    try:
        wait_for(lambda: up + b"1" in pub.page(time.time()), 10, "up 1")
        gate.clear()  # the next poll hangs
        wait_for(lambda: up + b"0" in pub.page(time.time()), 10, "up 0 from the watchdog")
        assert not pub.ready(time.time())
        assert "poller stalled" in pub.waiting_for(time.time())[0]
        gate.set()
        wait_for(lambda: up + b"1" in pub.page(time.time()), 10, "up 1 again")
    finally:
        gate.set()
        stop.set()
        for t in threads:
            t.join(timeout=10)
    assert "poller stopped: shutdown" in pub.views(time.time())[0].health.stalled
    import sys

    assert sys.getswitchinterval() == poller_module.SWITCH_INTERVAL_SECONDS  # tune_gc ran
