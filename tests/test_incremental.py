"""The incremental steady poll gives exactly what a computation from scratch gives.

Three things are kept from one poll to the next: today's parsed agents (the client's parse
memo), each agent's window figures (PastDays.figures) and each agent's rendered lines (the
page's memos). Here a real poller polls a scripted simulator over real HTTP on a fake clock
through random sequences of polls (sessions opening and closing, polls a minute or hours
apart, midnight and a DST change in the server's zone), and at every poll each kept result
is compared with the same thing computed afresh: equal values, equal bytes.
"""

from __future__ import annotations

import functools
import threading
from datetime import datetime
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import exporter.poller as poller_module
import exporter.publisher as publisher_module
from exporter.config import parse_config
from exporter.pastdays import PastDays
from exporter.poller import ServerPoller
from exporter.publisher import Publisher
from exporter.rocketchat.client import RocketChatClient
from exporter.rocketchat.parse import assemble_day, parse_history_page
from exporter.simulator import ManualClock, Simulator, SimulatorConfig, serve

ZONE = "Europe/Berlin"
# Saturday 2026-03-28 22:00 local: midnight, then the spring-forward change at 02:00 Sunday.
START = datetime(2026, 3, 28, 22, 0, tzinfo=ZoneInfo(ZONE)).timestamp()
AGENTS = ["ana", "bo", "cy", "di"]

STEP = st.tuples(
    st.sampled_from([60, 60, 60, 120, 900, 3600, 5 * 3600]),  # seconds to the next poll
    st.sampled_from(AGENTS),
    st.sampled_from(["open", "close", "nothing", "nothing"]),
)


class Checked:
    """Wraps the three incremental steps so that each result is checked against a fresh one."""

    def __init__(self, monkeypatch_setattr):
        self.checks = {"snapshot": 0, "render": 0, "parse": 0}
        real_build = poller_module.build_snapshot
        real_render = publisher_module.render_server

        def build(inp, now, past=None):
            snap = real_build(inp, now, past)
            assert snap == real_build(inp, now, PastDays()), "snapshot differs from scratch"
            self.checks["snapshot"] += 1
            return snap

        def render(view, previous=None, same_snapshot=False):
            page = real_render(view, previous, same_snapshot)
            assert page.chunks == real_render(view).chunks, "page differs from a fresh render"
            self.checks["render"] += 1
            return page

        monkeypatch_setattr(poller_module, "build_snapshot", build)
        monkeypatch_setattr(publisher_module, "render_server", render)

    def client(self, *args, **kwargs) -> RocketChatClient:
        client = RocketChatClient(*args, **kwargs)
        real = client._assemble

        def assemble(day, pages):
            history = real(day, pages)
            fresh = assemble_day(day, [parse_history_page(p.body) for p in pages])
            assert history == fresh, "parsed day differs from a fresh parse"
            self.checks["parse"] += 1
            return history

        client._assemble = assemble  # type: ignore[method-assign]
        return client


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(STEP, min_size=3, max_size=14))
def test_incremental_polls_equal_polls_from_scratch(monkeypatch, steps):
    clock = ManualClock(START)
    sim = Simulator(
        SimulatorConfig(agents=0, timezone=ZONE, rate_limit=0, user_id="u-1", auth_token="t-1"),
        clock=clock,
    )
    for i, name in enumerate(AGENTS):
        sim.add_agent(name)
        sim.add_session(name, START - 86400 - 3600 * (i + 1), START - 86400)  # yesterday
        sim.add_session(name, START - 7200 + 600 * i, START - 3600 + 300 * i)  # this evening
    server = serve(sim, host="127.0.0.1", port=0)
    with monkeypatch.context() as m:
        checked = Checked(m.setattr)
        config = parse_config(
            {
                "windows": ["1h", "8h", "24h", "3d", "today", "yesterday"],
                "staffing": {"timezone": ZONE, "default": 1},
                "servers": [
                    {
                        "name": "rc",
                        "url": server.url,
                        "user_id": "u-1",
                        "auth_token": "t-1",
                        "timezone": ZONE,
                    }
                ],
            }
        )
        publisher = Publisher(["rc"], 1e9)
        poller = ServerPoller(
            config.servers[0],
            config,
            publisher,
            stop=threading.Event(),
            clock=clock.now,
            client_factory=functools.partial(checked.client, sleep=clock.advance),
        )
        open_now: set[str] = set()
        try:
            assert poller.run_poll()
            for seconds, name, event in steps:
                clock.advance(seconds)
                if event == "open" and name not in open_now:
                    sim.add_session(name, clock.now() - 30, None)
                    open_now.add(name)
                elif event == "close" and name in open_now:
                    sim.close_session(name, clock.now() - 10)
                    open_now.discard(name)
                assert poller.run_poll(), publisher.views(clock.now())[0].health.last_error
        finally:
            poller.close()
            server.stop()
    assert checked.checks["snapshot"] == len(steps) + 1
    assert checked.checks["parse"] >= len(steps) + 1
    assert poller.past.figures or open_now == set(AGENTS)  # the memo was in use


def test_the_figures_memo_is_used_on_a_quiet_poll():
    """A minute later, with nobody changing, agents' figures are reused, not recomputed."""
    clock = ManualClock(START)
    sim = Simulator(
        SimulatorConfig(agents=0, timezone=ZONE, rate_limit=0, user_id="u-1", auth_token="t-1"),
        clock=clock,
    )
    for name in AGENTS:
        sim.add_agent(name)
        sim.add_session(name, START - 20000, START - 19000)
    server = serve(sim, host="127.0.0.1", port=0)
    config = parse_config(
        {
            "windows": ["1h", "24h", "today"],
            "servers": [
                {
                    "name": "rc",
                    "url": server.url,
                    "user_id": "u-1",
                    "auth_token": "t-1",
                    "timezone": ZONE,
                }
            ],
        }
    )
    poller = ServerPoller(
        config.servers[0],
        config,
        Publisher(["rc"], 1e9),
        stop=threading.Event(),
        clock=clock.now,
        client_factory=functools.partial(RocketChatClient, sleep=clock.advance),
    )
    try:
        assert poller.run_poll()
        clock.advance(60)
        assert poller.run_poll()
        # 24h and today cover the session and stay far from it: reused for every agent.
        assert poller.past.reused >= 2 * len(AGENTS)
    finally:
        poller.close()
        server.stop()
