"""One size, measured in a fresh process: Rocket.Chat cost, poll CPU, memory, scrape latency.

What each figure is:

- Rocket.Chat cost: answers counted by the simulator, per route. The initial fill fetches
  every day the longest window needs; a steady poll should need only today's history pages
  plus the live-status pages. The naive design (one request chain per window per poll) is
  computed from the same simulator: for each window, every day it touches, every page of it.
- Poll CPU: thread CPU time of the poller's thread, split by stopwatches into json.loads,
  parsing, build_snapshot and rendering (see rig.install_stopwatches). "work" is
  decode + compute + render; its ratio to json.loads alone is the issue's ratio.
- Memory: this process's peak RSS (VmHWM) after the polls, before any baseline is built.
- Scrape latency: see scrape.py.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections import Counter
from typing import Any

from . import sizes
from .rig import Exporter, SharedClock, SimulatorProcess, Stages, install_stopwatches, pages
from .rig import window_days as windows_days
from .scrape import (
    PrometheusClientServer,
    Scrapers,
    StaticServer,
    generate_latest_seconds,
    registry_of,
)


def memory_kib() -> dict[str, int]:
    """VmHWM (peak RSS) and VmRSS of this process, in KiB."""
    out = {}
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0])
    return out


def _routes(requests: Counter) -> dict[str, int]:
    out: dict[str, int] = {}
    for (route, _status), n in requests.items():
        out[route] = out.get(route, 0) + n
    return out


def _status(requests: Counter, status: int) -> int:
    return sum(n for (_route, s), n in requests.items() if s == status)


def _median_stages(polls: list[Stages]) -> dict[str, float]:
    dicts = [p.as_dict() for p in polls]
    return {k: statistics.median(d[k] for d in dicts) for k in dicts[0]}


def _series(page: bytes) -> int:
    return sum(1 for line in page.split(b"\n") if line and not line.startswith(b"#"))


def run_size(
    name: str, polls: int, scrape_seconds: float, scrape_min: int, progress: Any = None
) -> dict[str, Any]:
    size = sizes.SIZES[name]
    say = progress or (lambda _msg: None)
    install_stopwatches()
    clock = SharedClock.create(sizes.START)
    started = time.perf_counter()
    sim = SimulatorProcess(clock, size.agents)
    say(f"{name}: simulator ready in {time.perf_counter() - started:.1f} s")
    exp = Exporter(sim, clock, size.per_agent)
    try:
        fill = exp.poll()
        say(f"{name}: initial fill {fill.wall:.1f} s ({fill.fake / 60:.0f} min of rate-limit pace)")
        steady = [exp.poll() for _ in range(polls)]
        say(
            f"{name}: {polls} steady polls, median {statistics.median(p.wall for p in steady):.2f} s"
        )
        if not fill.ok or not all(p.ok for p in steady):
            raise RuntimeError(f"{name}: a poll failed: {exp.publisher.views(clock.now())}")
        gc.collect()
        memory = memory_kib()
        result: dict[str, Any] = {
            "size": name,
            "agents": size.agents,
            "per_agent": size.per_agent,
            "rocketchat": _rocketchat(exp, sim, size.agents, fill, steady),
            "cpu": {
                "fill": fill.stages.as_dict(),
                "steady": _median_stages([p.stages for p in steady]),
                "gc_full_per_poll": statistics.mean(p.stages.gc_full for p in steady),
                "fill_wall": fill.wall,
                "steady_wall": statistics.median(p.wall for p in steady),
            },
            "memory": {"peak_rss_kib": memory["VmHWM"], "rss_kib": memory["VmRSS"]},
        }
        result["scrape"] = _scrape(exp, scrape_seconds, scrape_min, say, name)
        return result
    finally:
        exp.close()
        sim.stop()


def _rocketchat(
    exp: Exporter, sim: SimulatorProcess, agents: int, fill: Any, steady: list[Any]
) -> dict[str, Any]:
    now = steady[-1].started  # what the last poll asked for
    days = windows_days(exp.config, now)
    touched = sorted({d for ds in days.values() for d in ds})
    totals = sim.day_totals(touched, now)
    today = max(touched)
    status_pages = pages(agents)  # users/agent lists every agent
    naive_history = sum(pages(totals[d]) for ds in days.values() for d in ds)
    per_poll = [_routes(p.requests) for p in steady]
    all_requests = fill.requests + sum((p.requests for p in steady), Counter())
    fill_routes = _routes(fill.requests)
    return {
        "fill_history": fill_routes.get("history", 0),
        "fill_status": fill_routes.get("agents", 0) + fill_routes.get("agents_status", 0),
        "fill_paced_seconds": fill.fake,
        "steady_history": statistics.mean(r.get("history", 0) for r in per_poll),
        "steady_status": statistics.mean(
            r.get("agents", 0) + r.get("agents_status", 0) for r in per_poll
        ),
        # today's pages as each poll found them (the day fills up while the benchmark runs)
        "expected_history": statistics.mean(
            pages(sim.day_totals([today], p.started)[today]) for p in steady
        ),
        "expected_status": status_pages,
        "naive_history": naive_history,
        "naive_status": status_pages * len(days),
        "naive_days_per_poll": sum(len(ds) for ds in days.values()),
        "responses_429": _status(all_requests, 429),
        "responses_other_errors": sum(
            n for (_r, s), n in all_requests.items() if s != 200 and s != 429
        ),
        "poll_interval": steady[-1].interval,
        "poll_interval_metric": _metric(exp.page(), "poll_interval_seconds"),
        "naive_poll_interval": max(
            sizes.RATE_WINDOW * -(-n // sizes.RATE_LIMIT)
            for n in (naive_history, status_pages * len(days))
        ),
        "stretch_warnings": exp.stretch_log.count,
    }


def _metric(page: bytes, name: str) -> float | None:
    """The value of the bench server's `rocketchat_omnichannel_<name>` on the page."""
    prefix = f'rocketchat_omnichannel_{name}{{server="{sizes.SERVER}"}} '.encode()
    for line in page.split(b"\n"):
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return None


def _scrape(exp: Exporter, seconds: float, minimum: int, say: Any, name: str) -> dict[str, Any]:
    from exporter.process_metrics import SelfMetrics
    from exporter.web import WebServer

    # What a scrape of the exporter answers: the page and the per-scrape process_*/build_info.
    page = exp.page() + SelfMetrics().render()
    registry = registry_of(page)
    gl_seconds, gl_bytes = generate_latest_seconds(registry)
    web = WebServer(("127.0.0.1", 0), exp.publisher, clock=exp.clock.now)
    web.start()
    static = StaticServer(page)
    prom = PrometheusClientServer(registry)
    scrapers = Scrapers()
    try:
        out = {
            "series": _series(page),
            "page_bytes": len(page),
            "generate_latest_seconds": gl_seconds,
            "generate_latest_bytes": gl_bytes,
            "floor": scrapers.run(static.port, seconds, minimum),
            "exporter": scrapers.run(web.port, seconds, minimum),
            "prometheus_client": scrapers.run(prom.port, seconds, minimum),
        }
        say(f"{name}: scrapes done")
        return out
    finally:
        scrapers.close()
        prom.stop()
        static.stop()
        web.stop()


def run_growth(name: str, polls: int, progress: Any = None) -> dict[str, Any]:
    """RSS over many polls, the clock advancing as the poll loop would (crosses midnight)."""
    size = sizes.SIZES[name]
    say = progress or (lambda _msg: None)
    clock = SharedClock.create(sizes.START)
    sim = SimulatorProcess(clock, size.agents)
    exp = Exporter(sim, clock, size.per_agent)
    warmup = min(10, polls)
    samples: list[tuple[int, int]] = []
    started = time.perf_counter()
    try:
        for i in range(1, polls + 1):
            if not exp.poll().ok:
                raise RuntimeError(f"growth run: poll {i} failed")
            if i in (warmup, polls) or i % 100 == 0:
                gc.collect()
                samples.append((i, memory_kib()["VmRSS"]))
                say(f"{name} growth: poll {i}, RSS {samples[-1][1] / 1024:.1f} MiB")
        base = dict(samples)[warmup]
        return {
            "size": name,
            "polls": polls,
            "simulated_hours": (clock.now() - sizes.START) / 3600,
            "wall_seconds": time.perf_counter() - started,
            "rss_kib": samples,
            "growth_kib": samples[-1][1] - base,
            "max_growth_kib": max(r for _i, r in samples) - base,
        }
    finally:
        exp.close()
        sim.stop()
