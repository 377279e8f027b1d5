"""The golden /metrics page: a seeded simulator, a fake clock, every family and edge.

`python -m tests.golden` writes tests/golden/metrics.txt; tests/test_golden.py fails when the
page the code renders now differs from it, byte for byte. So any change to the exposition
(a name, a label, a value, the order, the escaping) shows in review as a diff of that file.
Regenerate only when the change is meant.
"""

from __future__ import annotations

import functools
import re
import threading
from datetime import UTC, datetime
from pathlib import Path

GOLDEN = Path(__file__).with_name("metrics.txt")
# A Wednesday afternoon, a week of simulated history before it.
START = datetime(2026, 11, 18, 14, 0, tzinfo=UTC).timestamp()
# The one figure measured in wall time: normalised so the page is reproducible.
_DURATION = re.compile(rb"^(rocketchat_omnichannel_poll_duration_seconds\{[^}]*\}) .*$", re.M)


def render() -> bytes:
    """The page after a first fill and three steady polls, a minute apart."""
    from exporter.config import parse_config
    from exporter.poller import ServerPoller
    from exporter.publisher import Publisher
    from exporter.rocketchat.client import RocketChatClient
    from exporter.simulator import ManualClock, Simulator, SimulatorConfig, serve

    clock = ManualClock(START)
    sim = Simulator(
        SimulatorConfig(agents=12, seed=7, days=8, rate_limit=10, rate_window=60), clock=clock
    )
    # Hostile and odd names, escaped as the text format requires.
    sim.add_agent('quote"back\\slash')
    sim.add_session('quote"back\\slash', START - 5400, START - 1800)
    sim.add_agent("still.open")
    sim.add_session("still.open", START - 600, None)
    server = serve(sim, host="127.0.0.1", port=0)
    try:
        config = parse_config(
            {
                "windows": ["1h", "24h", "7d", "today", "yesterday"],
                "staffing": {
                    "timezone": "UTC",
                    "default": 1,
                    "rules": [{"days": "mon-fri", "from": "09:00", "to": "17:00", "agents": 3}],
                },
                "servers": [
                    {
                        "name": "golden",
                        "url": server.url,
                        "user_id": sim.config.user_id,
                        "auth_token": sim.config.auth_token,
                    }
                ],
            }
        )
        publisher = Publisher(["golden"], config.max_staleness)
        poller = ServerPoller(
            config.servers[0],
            config,
            publisher,
            stop=threading.Event(),
            clock=clock.now,
            client_factory=functools.partial(RocketChatClient, sleep=clock.advance),
        )
        for _ in range(4):
            if not poller.run_poll():
                raise RuntimeError(publisher.views(clock.now())[0].health.last_error)
            clock.advance(60)
        poller.close()
        return _DURATION.sub(rb"\1 0.125", publisher.page(clock.now() - 60))
    finally:
        server.stop()


def main() -> int:
    GOLDEN.write_bytes(render())
    print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size} bytes)")
    return 0
