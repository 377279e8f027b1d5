"""Open sessions (issue 7) through the real path: simulator over HTTP, injected clock.

Rocket.Chat writes an interval only when a session closes; the exporter counts the open part
itself from the live status it polls. Hand-computed expectations, polls every 60 s.
"""

from __future__ import annotations

import functools
import re
import threading
from datetime import UTC, datetime

import pytest

from exporter.config import parse_config
from exporter.poller import ServerPoller
from exporter.publisher import Publisher
from exporter.rocketchat.client import RocketChatClient
from exporter.simulator import ManualClock, Simulator, SimulatorConfig, serve


def t(h: int, m: int, s: int = 0, day: int = 25) -> float:
    return datetime(2026, 11, day, h, m, s, tzinfo=UTC).timestamp()


class Rig:
    def __init__(self, start: float, include_open: bool = True):
        self.clock = ManualClock(start)
        self.sim = Simulator(
            SimulatorConfig(agents=0, rate_limit=0, user_id="u1", auth_token="tok"),
            clock=self.clock,
        )
        self.sim.add_agent("alice")
        self.server = serve(self.sim, host="127.0.0.1", port=0)
        self.config = parse_config(
            {
                "poll_interval": "60s",
                "windows": ["1h", "today", "24h"],
                "windows_include_open_sessions": include_open,
                "servers": [
                    {"name": "rc", "url": self.server.url, "user_id": "u1", "auth_token": "tok"}
                ],
            }
        )
        self.publisher = Publisher(["rc"], self.config.max_staleness)
        self.poller = self.new_poller()

    def new_poller(self) -> ServerPoller:
        """A fresh exporter (as after a restart): no streaks, empty cache."""
        return ServerPoller(
            self.config.servers[0],
            self.config,
            self.publisher,
            stop=threading.Event(),
            clock=self.clock.now,
            client_factory=functools.partial(RocketChatClient, sleep=lambda s: None),
        )

    def poll_until(self, end: float, step: float = 60.0) -> None:
        """Poll now, then every `step` seconds up to and including `end`."""
        while True:
            assert self.poller.run_poll(), self.publisher.views(self.clock.now())[0].health
            if self.clock.now() + step > end:
                return
            self.clock.advance(step)

    def value(self, metric: str, **labels: str) -> float | None:
        page = self.publisher.page(self.clock.now()).decode()
        want = ",".join(f'{k}="{v}"' for k, v in {"server": "rc", **labels}.items())
        m = re.search(
            rf"^rocketchat_omnichannel_{metric}\{{{re.escape(want)}\}} (\S+)$", page, re.M
        )
        return float(m.group(1)) if m else None

    def close(self) -> None:
        self.poller.close()
        self.server.stop()


@pytest.fixture
def rig():
    made: list[Rig] = []

    def make(start: float, **kw) -> Rig:
        r = Rig(start, **kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def test_open_session_counts_before_it_closes_then_history_wins(rig):
    r = rig(t(11, 29))
    r.sim.add_session("alice", t(11, 30, 20))  # still open
    r.poll_until(t(12, 0))
    # First poll that saw her available: 11:31:00. Real: 29 min 40 s = 1780 s.
    assert r.value("agent_available_seconds", agent="alice", window="1h") == 1740
    assert abs(1740 - 1780) <= 60  # within one poll interval of the truth
    assert r.value("agent_open_session_seconds", agent="alice") == 1740
    assert r.value("agent_service_intervals", agent="alice", window="1h") == 1
    assert r.value("unstaffed_seconds", window="1h") == 3600 - 1740
    # The session closes at 12:00:30; the next poll sees the closed interval in the history.
    r.sim.close_session("alice", t(12, 0, 30))
    r.clock.set(t(12, 1))
    assert r.poller.run_poll()
    assert r.value("agent_available_seconds", agent="alice", window="1h") == 1810  # exactly closed
    assert r.value("agent_open_session_seconds", agent="alice") == 0
    assert r.value("agent_reported_available_seconds", agent="alice", window="today") == 1810


def test_no_double_count_at_the_moment_of_closing(rig):
    r = rig(t(11, 29))
    r.sim.add_session("alice", t(11, 30, 20))
    r.poll_until(t(12, 0))
    r.sim.close_session("alice", t(12, 1))
    r.clock.set(t(12, 1))  # the poll happens exactly when the session closes
    assert r.poller.run_poll()
    assert r.value("agent_available_seconds", agent="alice", window="1h") == 1840
    assert r.value("agent_service_intervals", agent="alice", window="1h") == 1


def test_closed_only_figures_when_disabled(rig):
    r = rig(t(11, 29), include_open=False)
    r.sim.add_session("alice", t(11, 30, 20))
    r.poll_until(t(12, 0))
    assert r.value("agent_available_seconds", agent="alice", window="1h") is None
    assert r.value("unstaffed_seconds", window="1h") == 3600
    assert r.value("agent_available", agent="alice") == 1


def test_restart_in_the_middle_of_a_session_undercounts_until_it_closes(rig):
    r = rig(t(11, 29))
    r.sim.add_session("alice", t(11, 30, 20))
    r.poll_until(t(11, 45))
    r.poller.close()
    r.poller = r.new_poller()  # restart at 11:45: the streak starts again
    r.poll_until(t(12, 0))
    assert r.value("agent_available_seconds", agent="alice", window="1h") == 900
    r.sim.close_session("alice", t(12, 0, 30))
    r.clock.set(t(12, 1))
    assert r.poller.run_poll()
    assert r.value("agent_available_seconds", agent="alice", window="1h") == 1810


def test_midnight_during_an_open_session(rig):
    r = rig(t(23, 29, day=24))
    r.sim.add_session("alice", t(23, 30, day=24))
    r.poll_until(t(0, 10))
    # History: [23:30:00, 23:59:59] on the 24th (1799 s). Open part: from local midnight.
    assert r.value("agent_available_seconds", agent="alice", window="today") == 600
    assert r.value("agent_available_seconds", agent="alice", window="1h") == 1799 + 600
    assert r.value("agent_open_session_seconds", agent="alice") == 600
    assert r.value("agent_service_intervals", agent="alice", window="1h") == 2  # the split
    # Team concurrency bridges the split second: nobody-available time is only before 23:30.
    assert r.value("unstaffed_seconds", window="1h") == 20 * 60


def test_failed_live_status_poll_neither_extends_nor_ends_the_streak(rig):
    r = rig(t(11, 29))
    r.sim.add_session("alice", t(11, 30, 20))
    r.poll_until(t(11, 45))
    streak = r.poller.streaks["alice"]
    r.clock.set(t(11, 46))
    r.sim.faults.inject("error", times=10, route="agents")
    assert not r.poller.run_poll()
    assert r.poller.streaks["alice"] == streak
    r.sim.faults.clear()
    r.clock.set(t(11, 47))
    assert r.poller.run_poll()
    # The streak still starts at 11:31: 16 minutes.
    assert r.value("agent_open_session_seconds", agent="alice") == 16 * 60


def test_open_session_stops_growing_while_only_the_status_chart_is_readable(rig):
    r = rig(t(11, 29))
    r.sim.add_session("alice", t(11, 30, 20))
    r.poll_until(t(11, 45))  # last seen available at 11:45; streak since 11:31
    r.sim.forbid("agents")  # per-agent status forbidden: the chart's counts only
    r.clock.set(t(12, 0))
    assert r.poller.run_poll()
    assert r.value("agents", status="available") == 1
    # Counted up to the last poll that saw her: 11:31 -> 11:45, not up to 12:00.
    assert r.value("agent_available_seconds", agent="alice", window="1h") == 14 * 60
