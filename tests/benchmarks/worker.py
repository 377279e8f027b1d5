"""One size, measured in a fresh process: Rocket.Chat cost, poll CPU, memory, scrape latency.

The same worker measures main's exporter code or a baseline's (cli.py puts the baseline's
`exporter` first on this process's path; compat.py adapts). What each figure is:

- Rocket.Chat cost: answers counted by the simulator, per route. The floor is physical: one
  history and one live-status request per steady poll, one request per day for the fill.
  Also measured against a simulator with API_Allow_Infinite_Count off (pages of 100).
- Poll CPU: thread CPU time of the poller's thread, split by stopwatches into json.loads,
  parsing, build_snapshot and rendering (see rig.install_stopwatches); garbage collection is
  timed by gc.callbacks on the same thread.
- Worst-case polls: a day of polls including 23:50 to 00:10 (scenarios.poll_day).
- Memory: this process's peak RSS (VmHWM) after the steady polls.
- Scrape latency: 4 scrapers, plain and gzip, idle and while a thread polls back to back;
  the floor is nginx serving the same bytes (scrape.py, nginx.py).
"""

from __future__ import annotations

import gc
import statistics
import threading
import time
from collections import Counter
from typing import Any

from . import compat, nginx, scenarios, sizes
from .rig import Exporter, SharedClock, SimulatorProcess, Stages, install_stopwatches, pages
from .rig import window_days as windows_days
from .scrape import PrometheusClientServer, Scrapers, generate_latest_seconds, registry_of


def memory_kib() -> dict[str, int]:
    """VmHWM (peak RSS) and VmRSS of this process, in KiB."""
    out = {}
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0])
    return out


def _status(requests: Counter, status: int) -> int:
    return sum(n for (_route, s), n in requests.items() if s == status)


def _median_stages(polls: list[Stages]) -> dict[str, float]:
    dicts = [p.as_dict() for p in polls]
    return {k: statistics.median(d[k] for d in dicts) for k in dicts[0]}


def _series(page: bytes) -> int:
    return sum(1 for line in page.split(b"\n") if line and not line.startswith(b"#"))


def run_size(
    name: str,
    polls: int,
    scrape_seconds: float,
    scrape_min: int,
    progress: Any = None,
    code: str = "new",
) -> dict[str, Any]:
    size = sizes.SIZES[name]
    say = progress or (lambda _msg: None)
    tuned = compat.tune_gc()  # as the exporter's process does before its pollers start
    install_stopwatches()
    clock = SharedClock.create(sizes.START)
    started = time.perf_counter()
    sim = SimulatorProcess(clock, size.agents)
    say(f"{name} {code}: simulator ready in {time.perf_counter() - started:.1f} s")
    exp = Exporter(sim, clock, size.per_agent)
    try:
        fill = exp.poll()
        say(f"{name} {code}: fill {fill.wall:.1f} s ({fill.fake / 60:.0f} min of rate-limit pace)")
        steady = [exp.poll() for _ in range(polls)]
        say(
            f"{name} {code}: steady polls, median {statistics.median(p.wall for p in steady):.2f} s"
        )
        if not fill.ok or not all(p.ok for p in steady):
            raise RuntimeError(f"{name}: a poll failed: {exp.publisher.views(clock.now())}")
        gc.collect()
        memory = memory_kib()
        steady_stages = _median_stages([p.stages for p in steady])
        result: dict[str, Any] = {
            "size": name,
            "agents": size.agents,
            "per_agent": size.per_agent,
            "code": code,
            "layout": compat.LAYOUT,
            "gc_tuned": tuned,
            "rocketchat": _rocketchat(exp, sim, size.agents, fill, steady),
            "cpu": {
                "fill": fill.stages.as_dict(),
                "steady": steady_stages,
                "gc_full_per_poll": statistics.mean(p.stages.gc_full for p in steady),
                "gc_per_poll": statistics.mean(p.stages.gc for p in steady),
                "gc_share": statistics.mean(p.stages.gc / p.stages.total for p in steady),
                "fill_wall": fill.wall,
                "steady_wall": statistics.median(p.wall for p in steady),
            },
            "memory": {"peak_rss_kib": memory["VmHWM"], "rss_kib": memory["VmRSS"]},
        }
        scrape, polled = _scrape(exp, scrape_seconds, scrape_min, say, f"{name} {code}")
        result["scrape"] = scrape
        result["worst"] = scenarios.poll_day(exp, steady + polled, 3, say)
    finally:
        exp.close()
        sim.stop()
    result["count_off"] = scenarios.count_off(size, 2, say)
    return result


def _rocketchat(
    exp: Exporter, sim: SimulatorProcess, agents: int, fill: Any, steady: list[Any]
) -> dict[str, Any]:
    now = steady[-1].started  # what the last poll asked for
    days = windows_days(exp.config, now)
    fill_days = {d for ds in windows_days(exp.config, fill.started).values() for d in ds}
    touched = sorted({d for ds in days.values() for d in ds})
    totals = sim.day_totals(touched, now)
    today = max(touched)
    status_pages = pages(agents)  # users/agent lists every agent
    naive_history = sum(pages(totals[d]) for ds in days.values() for d in ds)
    all_requests = fill.requests + sum((p.requests for p in steady), Counter())
    return scenarios.request_figures(fill, steady) | {
        # the physical floor: one request per list, whatever the team size
        "floor_fill_history": len(fill_days),
        "floor_fill_status": 1,
        "floor_steady_history": 1,
        "floor_steady_status": 1,
        # today's pages of 100 as each poll found them (the day fills up during the run)
        "paged_history": statistics.mean(
            pages(sim.day_totals([today], p.started)[today]) for p in steady
        ),
        "paged_status": status_pages,
        "naive_history": naive_history,
        "naive_status": status_pages * len(days),
        "naive_days_per_poll": sum(len(ds) for ds in days.values()),
        "responses_429": _status(all_requests, 429),
        "responses_other_errors": sum(
            n for (_r, s), n in all_requests.items() if s != 200 and s != 429
        ),
        "poll_interval_metric": _metric(exp.page(), "poll_interval_seconds"),
        "stretch_warnings": exp.stretch_log.count,
    }


def _metric(page: bytes, name: str) -> float | None:
    """The value of the bench server's `rocketchat_omnichannel_<name>` on the page."""
    prefix = f'rocketchat_omnichannel_{name}{{server="{sizes.SERVER}"}} '.encode()
    for line in page.split(b"\n"):
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return None


class _PollLoop:
    """A thread polling back to back (each poll followed by the clock's wait), as a poller
    whose polls take the whole interval would."""

    def __init__(self, exp: Exporter):
        self._exp = exp
        self._stop = threading.Event()
        self.polls: list[Any] = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="bench-polls", daemon=True)

    def _run(self) -> None:
        try:
            while not self._stop.is_set() and len(self.polls) < 10_000:
                self.polls.append(self._exp.poll())
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def __enter__(self) -> _PollLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=600)
        if self.error is not None:
            raise RuntimeError("polling during scrapes failed") from self.error


def _scrape(
    exp: Exporter, seconds: float, minimum: int, say: Any, label: str
) -> tuple[dict[str, Any], list[Any]]:
    from exporter.web import WebServer

    # What a scrape answers (with main's per-scrape process_* lines): nginx serves these bytes.
    page, packed = compat.scrape_bytes(exp)
    registry = registry_of(page)
    gl_seconds, gl_bytes = generate_latest_seconds(registry)
    web = WebServer(("127.0.0.1", 0), exp.publisher, clock=exp.clock.now)
    web.start()
    prom = PrometheusClientServer(registry)
    executable = nginx.binary()
    floor = nginx.NginxFloor(page, packed, executable) if executable else None
    scrapers = Scrapers()

    def both(port: int) -> dict[str, Any]:
        return {
            "plain": scrapers.run(port, seconds, minimum),
            "gzip": scrapers.run(port, seconds, minimum, gzip=True),
        }

    try:
        out: dict[str, Any] = {
            "series": _series(page),
            "page_bytes": len(page),
            "gzip_bytes": len(packed),
            "generate_latest_seconds": gl_seconds,
            "generate_latest_bytes": gl_bytes,
            "nginx_skipped": "" if floor else nginx.SKIPPED,
            "idle": {"exporter": both(web.port), "nginx": both(floor.port) if floor else None},
            "prometheus_client": scrapers.run(prom.port, seconds, minimum),
        }
        with _PollLoop(exp) as loop:
            out["polling"] = {
                "exporter": both(web.port),
                "nginx": both(floor.port) if floor else None,
            }
        out["polling"]["polls"] = len(loop.polls)
        if not floor:
            say(nginx.SKIPPED)
        say(f"{label}: scrapes done ({len(loop.polls)} polls during them)")
        return out, [p for p in loop.polls if p.ok]
    finally:
        scrapers.close()
        if floor:
            floor.stop()
        prom.stop()
        web.stop()


def run_servers(name: str, counts: list[int], rounds: int, progress: Any = None) -> dict:
    compat.tune_gc()
    install_stopwatches()
    return scenarios.servers(sizes.SIZES[name], counts, rounds, progress or (lambda _m: None))


def run_growth(name: str, polls: int, progress: Any = None) -> dict[str, Any]:
    """RSS over many polls, the clock advancing as the poll loop would (crosses midnight)."""
    size = sizes.SIZES[name]
    say = progress or (lambda _msg: None)
    compat.tune_gc()
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
