"""A first fill paced by Rocket.Chat's rate limit is visible from its first request.

Real threads, real clock, real HTTP to a simulator that allows 2 history requests per 2 s:
the week of history takes several seconds to fetch. Meanwhile /metrics already has the
request counters, the fill's progress and ETA, and today's figures; windows that need days
still missing say so (`window_complete` 0) and have no other series.
"""

from __future__ import annotations

import threading
import time

from exporter.config import parse_config
from exporter.poller import start_pollers
from exporter.publisher import Publisher
from exporter.simulator import Simulator, SimulatorConfig, serve
from exporter.web import landing_page
from tests.support.faultrig import TOKEN, USER_ID, parse_page
from tests.support.procs import wait_for


def key(name: str, **labels: str):
    return (name, frozenset({"server": "rc", **labels}.items()))


def test_first_fill_shows_progress_and_publishes_today_early(caplog):
    caplog.set_level("INFO", logger="exporter.poller")
    sim = Simulator(
        SimulatorConfig(
            agents=40, seed=3, rate_limit=2, rate_window=2, user_id=USER_ID, auth_token=TOKEN
        )
    )
    server = serve(sim)
    config = parse_config(
        {
            "poll_interval": "60s",
            "windows": ["today", "7d"],
            "servers": [{"name": "rc", "url": server.url, "user_id": USER_ID, "auth_token": TOKEN}],
        }
    )
    publisher = Publisher(["rc"], config.max_staleness)
    stop = threading.Event()
    threads = start_pollers(config, publisher, stop)
    seen_partial = {}
    try:

        def partial():
            samples = parse_page(publisher.page(time.time()))
            if samples.get(key("window_complete", window="today")) == 1:
                seen_partial.update(samples)
                return True
            return False

        wait_for(partial, 20, "today published early")
        s = seen_partial
        if s.get(key("window_complete", window="7d")) == 0:  # the fill is still going
            assert 0 < s[key("fill_progress_ratio")] < 1
            assert key("fill_eta_seconds") in s
            assert key("up") not in s  # no poll has finished: no verdict yet
            assert s[key("api_requests_total", endpoint="history", code="200")] >= 1
            assert s[key("poll_errors_total", reason="rate_limited")] == 0  # there, at 0
            assert any(k[0] == "agent_available_seconds" for k in s)
            assert not any(
                k[0] == "agent_available_seconds" and ("window", "7d") in k[1] for k in s
            )
            assert not any(k[0] == "available_agents_avg" and ("window", "7d") in k[1] for k in s)
            (waiting,) = publisher.waiting_for(time.time())
            assert waiting.startswith("rc: first poll running, filling the history cache: ")
            assert " of 8 days" in waiting
            page = landing_page(publisher, time.time()).decode()
            assert " % (" in page and "days)" in page
        else:  # too fast to catch mid-way: the test says so rather than pass silently
            raise AssertionError(f"the fill finished before it could be observed: {s}")

        def filled():
            samples = parse_page(publisher.page(time.time()))
            return samples.get(key("up")) == 1 and samples

        done = wait_for(filled, 60, "the fill to finish")
        assert done[key("fill_progress_ratio")] == 1
        assert done[key("fill_eta_seconds")] == 0
        assert done[key("window_complete", window="7d")] == 1
        assert any(k[0] == "agent_available_seconds" and ("window", "7d") in k[1] for k in done)
        assert sim.requests.get(("history", 429), 0) == 0  # paced, never refused
        # The early publish's live status served the end of the fill too: one request.
        assert sim.request_total("agents") == 1
        progress = [r for r in caplog.records if r.getMessage() == "filling the history cache"]
        assert progress and all(hasattr(r, "eta_seconds") for r in progress)
        assert [r.getMessage() for r in caplog.records].count("history cache filled") == 1
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
        server.stop()
