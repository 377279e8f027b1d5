"""Agents missing from past days are reported per window, not only for today.

A Rocket.Chat that rejects count/offset on the history route (7.0 and older) returns at most
its default page size (50) per day. On a quiet early morning today has 34 agents (all
returned) while yesterday had 114 (64 missing): `agents_truncated` (today) says 0, but
`yesterday` and `7d` are short by 64 agents and must say so.
"""

from __future__ import annotations

import functools
import threading
from datetime import UTC, datetime

from exporter.config import parse_config
from exporter.poller import ServerPoller
from exporter.publisher import Publisher
from exporter.rocketchat.client import RocketChatClient
from exporter.simulator import ManualClock, Simulator, SimulatorConfig, serve
from tests.support.faultrig import parse_page

NOW = datetime(2026, 3, 4, 6, 30, tzinfo=UTC).timestamp()  # Wednesday, early morning
YESTERDAY_NOON = NOW - 18.5 * 3600


def test_a_quiet_today_and_truncated_past_days_are_reported_per_window():
    clock = ManualClock(NOW)
    sim = Simulator(
        SimulatorConfig(agents=0, pagination="rejected", rate_limit=0, user_id="u", auth_token="t"),
        clock=clock,
    )
    for i in range(114):
        name = f"agent{i:03d}"
        sim.add_agent(name)
        sim.add_session(name, YESTERDAY_NOON, YESTERDAY_NOON + 600)
        if i < 34:
            sim.add_session(name, NOW - 5400, NOW - 3600)
    server = serve(sim, host="127.0.0.1", port=0)
    config = parse_config(
        {
            "windows": ["1h", "today", "yesterday", "7d"],
            "servers": [{"name": "rc", "url": server.url, "user_id": "u", "auth_token": "t"}],
        }
    )
    publisher = Publisher(["rc"], 1e9)
    poller = ServerPoller(
        config.servers[0],
        config,
        publisher,
        stop=threading.Event(),
        clock=clock.now,
        client_factory=functools.partial(RocketChatClient, sleep=clock.advance),
    )
    try:
        assert poller.run_poll(), publisher.views(clock.now())[0].health.last_error
        samples = parse_page(publisher.page(clock.now()))
    finally:
        poller.close()
        server.stop()

    def missing(window: str) -> float:
        key = frozenset({("server", "rc"), ("window", window)})
        return samples[("window_agents_missing", key)]

    assert samples[("agents_truncated", frozenset({("server", "rc")}))] == 0  # today: all there
    assert missing("today") == 0
    assert missing("1h") == 0  # 05:30-06:30 touches today only
    assert missing("yesterday") == 64  # 114 counted, 50 returned
    assert missing("7d") == 64
