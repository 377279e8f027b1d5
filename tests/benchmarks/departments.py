"""What `departments: all` costs: requests per poll, series and poll time, against `none`.

    .venv/bin/python -m tests.benchmarks.departments [--agents 500 5000] [--departments 10]

For each size, one simulator (in process, real HTTP on 127.0.0.1, a manual clock) with
generated agents, `--departments` departments, a queue and open chats is polled by two
exporters side by side: the baseline (`departments: none`, today's output) and one with
`departments: all`. After the history cache is full, both poll `--polls` times; printed per
size: steady requests per poll by endpoint (the departments route amortised over its refresh),
series and bytes of each /metrics page, and the median poll time of each with their ratio
(same run, same machine). Figures, not assertions.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime

from exporter.config import parse_config
from exporter.poller import ServerPoller
from exporter.publisher import Publisher
from exporter.simulator import ManualClock, Simulator, SimulatorConfig, serve

from .sizes import HISTORY_DAYS, INTERVALS_PER_DAY, POLL_INTERVAL, SEED, WINDOWS

T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC).timestamp()
USER_ID, TOKEN = "bench-user", "bench-token"
NEW_ENDPOINTS = ("departments", "inquiries", "load")


def _poller(url: str, clock: ManualClock, departments: str) -> tuple[ServerPoller, Publisher]:
    config = parse_config(
        {
            "poll_interval": f"{POLL_INTERVAL:g}s",
            "windows": list(WINDOWS),
            "departments": departments,
            "servers": [
                {"name": "rc", "url": url, "user_id": USER_ID, "auth_token": TOKEN, "timeout": 60}
            ],
        }
    )
    publisher = Publisher(["rc"], config.max_staleness)
    poller = ServerPoller(
        config.servers[0], config, publisher, stop=threading.Event(), clock=clock.now
    )
    return poller, publisher


def _series(page: bytes) -> int:
    return sum(1 for line in page.splitlines() if line and not line.startswith(b"#"))


def run(agents: int, departments: int, polls: int) -> dict:
    clock = ManualClock(T0)
    sim = Simulator(
        SimulatorConfig(
            agents=agents,
            seed=SEED,
            days=HISTORY_DAYS,
            intervals_per_day=INTERVALS_PER_DAY,
            rate_limit=0,
            user_id=USER_ID,
            auth_token=TOKEN,
        ),
        clock=clock,
    )
    sim.omni.generate(departments, [a.username for a in sim.agents])
    server = serve(sim, host="127.0.0.1", port=0)
    out: dict = {"agents": agents, "departments": departments}
    try:
        pollers = {mode: _poller(server.url, clock, mode) for mode in ("none", "all")}
        for poller, _ in pollers.values():  # the initial fill, not measured
            assert poller.run_poll(), "fill failed"
        times: dict[str, list[float]] = {mode: [] for mode in pollers}
        before = {mode: Counter(p._requests) for mode, (p, _) in pollers.items()}
        for _ in range(polls):
            clock.advance(POLL_INTERVAL)
            for mode, (poller, _) in pollers.items():
                start = time.perf_counter()
                assert poller.run_poll(), f"poll failed ({mode})"
                times[mode].append(time.perf_counter() - start)
        for mode, (poller, publisher) in pollers.items():
            delta = Counter(poller._requests) - before[mode]
            per_poll: Counter[str] = Counter()
            for (endpoint, _code), n in delta.items():
                per_poll[endpoint] += n
            page = publisher.page(clock.now())
            out[mode] = {
                "requests_per_poll": {k: v / polls for k, v in sorted(per_poll.items())},
                "series": _series(page),
                "bytes": len(page),
                "poll_ms": 1000 * statistics.median(times[mode]),
            }
            poller.close()
    finally:
        server.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.benchmarks.departments")
    ap.add_argument("--agents", type=int, nargs="+", default=[500, 5000])
    ap.add_argument("--departments", type=int, default=10)
    ap.add_argument("--polls", type=int, default=10)  # >= the refresh period (10 polls)
    args = ap.parse_args(argv)
    print(f"departments: {args.departments}, steady polls: {args.polls}, windows: {WINDOWS}")
    for agents in args.agents:
        r = run(agents, args.departments, args.polls)
        base, dep = r["none"], r["all"]
        extra = {k: v for k, v in dep["requests_per_poll"].items() if k in NEW_ENDPOINTS}
        print(f"\n{agents} agents")
        print(f"  requests/poll  none: {base['requests_per_poll']}")
        print(f"                 all:  {dep['requests_per_poll']}")
        print(f"                 extra: {extra} = {sum(extra.values()):.2f} per poll")
        print(
            f"  series         none: {base['series']}  all: {dep['series']}"
            f"  extra: {dep['series'] - base['series']}"
        )
        print(f"  page bytes     none: {base['bytes']}  all: {dep['bytes']}")
        print(
            f"  poll ms (med.) none: {base['poll_ms']:.1f}  all: {dep['poll_ms']:.1f}"
            f"  ratio: {dep['poll_ms'] / base['poll_ms']:.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
