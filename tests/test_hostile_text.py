"""Text from Rocket.Chat that UTF-8 cannot encode (lone surrogates) must not stop anything.

Rocket.Chat may send `"username": "evil\\ud800name"` (a valid JSON escape). Once, rendering
that killed every poller thread while `up` stayed 1. Here through real threads and real HTTP:
two servers, one with the hostile name; both keep being polled and published.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time

import httpx

from exporter.config import parse_config
from exporter.poller import start_pollers
from exporter.publisher import Publisher
from exporter.rocketchat.client import RocketChatClient
from exporter.rocketchat.errors import RocketChatError
from exporter.rocketchat.parse import parse_agents_page, parse_history_page
from exporter.simulator import Simulator, SimulatorConfig, serve
from exporter.text import clean
from exporter.web import landing_page
from tests.support.faultrig import TOKEN, USER_ID, parse_page
from tests.support.procs import require_binary, wait_for

EVIL = "evil\ud800name"


def test_clean_replaces_only_what_utf8_cannot_encode():
    assert clean(EVIL) == "evil\ufffdname"
    assert clean("\udc00\ud83d") == "\ufffd\ufffd"
    for fine in ("plain", "é😀 ok", "a\x00b\u202e", ""):
        assert clean(fine) is fine  # unchanged, not even copied
    assert clean("x" * 10_000 + "\ud800").endswith("\ufffd")


def test_parsers_clean_every_string_they_keep():
    page = parse_history_page(
        json.loads('{"agents":[{"username":"evil\\ud800name","serviceHistory":[]}],"total":1}')
    )
    assert page.agents[0].username == "evil\ufffdname"
    live = parse_agents_page(
        json.loads('{"users":[{"username":"\\udfffx","status":"on\\ud800","statusLivechat":"x"}]}')
    )
    assert (live.agents[0].username, live.agents[0].presence) == ("\ufffdx", "on\ufffd")


def test_an_error_text_with_a_surrogate_gives_a_clean_message_and_landing_page():
    body = b'{"success": false, "error": "maintenance \\udc00 window"}'
    transport = httpx.MockTransport(lambda request: httpx.Response(503, content=body))
    config = parse_config(
        {
            "servers": [
                {"name": "rc", "url": "http://127.0.0.1:1", "user_id": USER_ID, "auth_token": TOKEN}
            ]
        }
    )
    client = RocketChatClient(config.servers[0], transport=transport, sleep=lambda s: None)
    try:
        client.fetch_live_status()
    except RocketChatError as exc:
        message = str(exc)
    else:
        raise AssertionError("a 503 must fail")
    assert "maintenance \ufffd window" in message
    message.encode("utf-8")  # would raise with the surrogate
    publisher = Publisher(["rc"], 300)
    from exporter.exposition import ServerHealth

    publisher.update(
        ServerHealth(server="rc", up=False, last_poll=1000.0, last_error=message), None, 1000.0
    )
    assert "maintenance \ufffd window" in landing_page(publisher, 1000.0).decode("utf-8")


def _simulator(names: list[str], now: float) -> Simulator:
    sim = Simulator(SimulatorConfig(agents=0, rate_limit=0, user_id=USER_ID, auth_token=TOKEN))
    for name in names:
        sim.add_agent(name)
        sim.add_session(name, now - 3000, now - 1200)
    return sim


def test_a_hostile_username_stops_no_poller(tmp_path):
    promtool = require_binary("promtool")
    now = time.time()
    sims = {"rc": _simulator(["alice", EVIL], now), "sim": _simulator(["bob"], now)}
    servers = {name: serve(sim) for name, sim in sims.items()}
    config = parse_config(
        {
            "poll_interval": "0.3s",
            "windows": ["1h"],
            "servers": [
                {"name": name, "url": srv.url, "user_id": USER_ID, "auth_token": TOKEN}
                for name, srv in servers.items()
            ],
        }
    )
    publisher = Publisher(list(servers), config.max_staleness)
    stop = threading.Event()
    threads = start_pollers(config, publisher, stop)
    try:
        wait_for(
            lambda: all(s.request_total("history") >= 1 for s in sims.values()), 10, "first polls"
        )
        before = {n: s.request_total("agents") for n, s in sims.items()}
        # Both threads go on polling: three more live-status requests each.
        wait_for(
            lambda: all(s.request_total("agents") >= before[n] + 3 for n, s in sims.items()),
            10,
            "three more polls of each server",
        )
        assert all(t.is_alive() for t in threads)
        page = publisher.page(time.time())
        samples = parse_page(page)
        for name in servers:
            assert samples[("up", frozenset({("server", name)}))] == 1
        key = (
            "agent_available_seconds",
            frozenset({("server", "rc"), ("agent", "evil\ufffdname"), ("window", "1h")}),
        )
        assert samples[key] == 1800
        result = subprocess.run(
            [promtool, "check", "metrics"], input=page, capture_output=True, timeout=30
        )
        assert result.returncode == 0, result.stderr.decode()
        landing_page(publisher, time.time()).decode("utf-8")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
        for srv in servers.values():
            srv.stop()
