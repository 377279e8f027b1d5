"""What the history cache on disk costs against what it saves: one day at 500 and 5,000 agents.

    .venv/bin/python -m tests.benchmarks.daystore [--agents 500 5000] [--repeat 5]

For each size, one past day is fetched from the simulator over real HTTP with the real client
(the baseline: what a restart costs without the cache, with a simulator that answers far faster
than Rocket.Chat), and its JSON pages are parsed again on their own (the floor of fetching: a
server answering in no time). Then the same day is stored (encode, write, fsync, rename) and
loaded (read, verify, decode) through exporter/daystore.py. Printed: bytes per day, median ms,
and load as a share of fetching. Figures, not assertions; 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta

import httpx

from exporter.config.model import Secret, ServerConfig
from exporter.daystore import DayStore
from exporter.rocketchat.client import RocketChatClient, day_range
from exporter.rocketchat.parse import assemble_day, parse_history_page
from exporter.simulator import ManualClock, Simulator, SimulatorConfig, serve

T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC).timestamp()
HISTORY = "/api/v1/livechat/analytics/agents/available-for-service-history"
USER_ID, TOKEN = "bench-user", "bench-token"
PAGE_SIZE = 100  # the raw pages for the parse-only baseline, as Rocket.Chat pages by default


def median_ms(run, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


def measure(agents: int, repeat: int) -> dict[str, float]:
    clock = ManualClock(T0)
    config = SimulatorConfig(
        agents=agents, seed=1, timezone="UTC", rate_limit=0, user_id=USER_ID, auth_token=TOKEN
    )
    sim = Simulator(config, clock=clock)
    server = serve(sim, host="127.0.0.1", port=0)
    day = datetime.fromtimestamp(T0, UTC).date() - timedelta(days=1)
    rc = ServerConfig(
        name="bench",
        url=server.url,
        user_id=Secret(value=USER_ID, key="user_id"),
        auth_token=Secret(value=TOKEN, key="auth_token"),
        timeout=60.0,
    )
    client = RocketChatClient(rc, sleep=clock.advance, clock=clock.now)
    try:
        client.fetch_history_day(day)  # warm up: connection, simulator's day documents
        fetch_ms, history = median_ms(lambda: client.fetch_history_day(day), repeat)
        bodies = _raw_pages(server.url, day)
    finally:
        client.close()
        server.stop()
    parse_ms, parsed = median_ms(
        lambda: assemble_day(day, [parse_history_page(json.loads(b)) for b in bodies]), repeat
    )
    assert parsed == history
    with tempfile.TemporaryDirectory() as tmp:
        store = DayStore(tmp, "bench", rc.url, "UTC")
        fetched_at = T0
        store_ms, ok = median_ms(lambda: store.save(history, fetched_at), repeat)
        assert ok
        size = os.path.getsize(store.path(day))
        load_ms, loaded = median_ms(lambda: store.load([day]), repeat)
        assert loaded[0].history == history
    intervals = sum(len(a.intervals) for a in history.agents.values())
    return {
        "agents": len(history.agents),
        "intervals": intervals,
        "json_bytes": sum(map(len, bodies)),
        "file_bytes": size,
        "fetch_ms": fetch_ms,
        "parse_ms": parse_ms,
        "store_ms": store_ms,
        "load_ms": load_ms,
    }


def _raw_pages(url: str, day) -> list[bytes]:
    start, end = day_range(day, UTC)
    bodies: list[bytes] = []
    headers = {"X-User-Id": USER_ID, "X-Auth-Token": TOKEN}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        while True:
            params = {"start": start, "end": end, "fullReport": "true"}
            params |= {"count": PAGE_SIZE, "offset": PAGE_SIZE * len(bodies)}
            body = http.get(HISTORY, params=params).content
            bodies.append(body)
            if len(json.loads(body)["agents"]) < PAGE_SIZE:
                return bodies


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, nargs="+", default=[500, 5000])
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args(argv)
    print(
        f"history cache on disk, one day; median of {args.repeat}; python {sys.version.split()[0]}"
    )
    head = (
        f"{'agents':>7} {'intervals':>9} {'JSON bytes':>11} {'file bytes':>11} "
        f"{'fetch ms':>9} {'parse ms':>9} {'store ms':>9} {'load ms':>8} "
        f"{'load/fetch':>10} {'load/parse':>10}"
    )
    print(head)
    for n in args.agents:
        r = measure(n, args.repeat)
        print(
            f"{r['agents']:>7} {r['intervals']:>9} {r['json_bytes']:>11} {r['file_bytes']:>11} "
            f"{r['fetch_ms']:>9.1f} {r['parse_ms']:>9.1f} {r['store_ms']:>9.1f} "
            f"{r['load_ms']:>8.1f} {r['load_ms'] / r['fetch_ms']:>10.2f} "
            f"{r['load_ms'] / r['parse_ms']:>10.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
