"""The scenarios beyond a quiet afternoon: infinite count off, a poll day across midnight, and
N large servers in one process. Each returns plain figures for the JSON."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from . import sizes
from .rig import Exporter, Poll, SharedClock, SimulatorProcess, timed_publisher

Say = Callable[[str], None]


def routes(requests: Counter) -> dict[str, int]:
    out: dict[str, int] = {}
    for (route, _status), n in requests.items():
        out[route] = out.get(route, 0) + n
    return out


def status_requests(r: dict[str, int]) -> int:
    return r.get("agents", 0) + r.get("agents_status", 0)


def request_figures(fill: Poll, steady: Sequence[Poll]) -> dict[str, Any]:
    """Requests of the fill and per steady poll, the fill's paced time, the interval."""
    fill_routes = routes(fill.requests)
    per_poll = [routes(p.requests) for p in steady]
    return {
        "fill_history": fill_routes.get("history", 0),
        "fill_status": status_requests(fill_routes),
        "fill_paced_seconds": fill.fake,
        "steady_history": statistics.mean(r.get("history", 0) for r in per_poll),
        "steady_status": statistics.mean(status_requests(r) for r in per_poll),
        "poll_interval": steady[-1].interval,
    }


def count_off(size: sizes.Size, polls: int, say: Say) -> dict[str, Any]:
    """The same fill and steady polls against a server with API_Allow_Infinite_Count off:
    every list comes in pages of 100 (what the client paid before count=0)."""
    clock = SharedClock.create(sizes.START)
    sim = SimulatorProcess(clock, size.agents, infinite=False)
    exp = Exporter(sim, clock, size.per_agent)
    try:
        fill = exp.poll()
        steady = [exp.poll() for _ in range(polls)]
        if not fill.ok or not all(p.ok for p in steady):
            raise RuntimeError(f"{size.name}, infinite count off: a poll failed")
        out = request_figures(fill, steady)
        say(f"{size.name}: infinite count off: fill {out['fill_history']} + {out['fill_status']}")
        return out
    finally:
        exp.close()
        sim.stop()


def _quantiles(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50": statistics.median(ordered), "p95": p95, "max": ordered[-1]}


def _clock_label(t: float) -> str:
    return datetime.fromtimestamp(t, ZoneInfo(sizes.TIMEZONE)).strftime("%H:%M")


def poll_day(exp: Exporter, earlier: Sequence[Poll], afternoon: int, say: Say) -> dict[str, Any]:
    """Worst-case polls: the afternoon polls so far plus `afternoon` more, then one poll a
    minute (as far as the exporter keeps up) from 23:50 to 00:10, midnight included."""
    polls = list(earlier) + [exp.poll() for _ in range(afternoon)]
    tz = ZoneInfo(sizes.TIMEZONE)
    today = datetime.fromtimestamp(exp.clock.now(), tz).date()
    midnight = datetime(today.year, today.month, today.day, tzinfo=tz) + timedelta(days=1)
    start, end = (midnight - timedelta(minutes=10)).timestamp(), midnight.timestamp() + 600
    exp.clock.set(start)
    builds_before = exp.past_builds
    rebuilt_at: list[str] = []
    night: list[Poll] = []
    target = start
    while exp.clock.now() <= end and len(night) < 100:  # bounded: 21 polls at most needed
        builds = exp.past_builds
        p = exp.poll(advance=False)
        if not p.ok:
            raise RuntimeError(f"poll at {_clock_label(p.started)} failed")
        night.append(p)
        if exp.past_builds != builds:
            rebuilt_at.append(_clock_label(p.started))
        target += sizes.POLL_INTERVAL
        exp.clock.set(max(target, p.started + p.interval))
    polls += night
    slowest = max(polls, key=lambda p: p.stages.total)
    out = {
        "polls": len(polls),
        "night_polls": len(night),
        "night_first_last": [_clock_label(night[0].started), _clock_label(night[-1].started)],
        "cpu": _quantiles([p.stages.total for p in polls]),
        "wall": _quantiles([p.wall for p in polls]),
        "slowest_at": _clock_label(slowest.started),
        "night_history_requests": sum(routes(p.requests).get("history", 0) for p in night),
        "midnight_builds": exp.past_builds - builds_before,
        "rebuilt_at": rebuilt_at,
    }
    say(f"{exp.name}: poll day, {len(polls)} polls, past part rebuilt at {rebuilt_at}")
    return out


KEEP_SNAPSHOTS = 86400.0


def servers(size: sizes.Size, counts: Sequence[int], rounds: int, say: Say) -> dict[str, Any]:
    """N servers of `size` in one process (one publisher, N pollers polled in turn, each once
    a minute): the CPU of one server's update (its poll and its publish) for each N.

    The N servers are N names for one simulated Rocket.Chat (same data, so equal cost). The
    publisher keeps snapshots for a day (not max_staleness): where polls are paced by the rate
    limit (the baseline's pages of 100) the other servers' snapshots would otherwise be
    dropped as stale and their parts rendered empty, which is not the cost being measured."""
    clock = SharedClock.create(sizes.START)
    sim = SimulatorProcess(clock, size.agents)
    names = [f"{sizes.SERVER}{i + 1}" for i in range(max(counts))]
    publisher = timed_publisher(names, KEEP_SNAPSHOTS)
    exps = [Exporter(sim, clock, size.per_agent, name=n, publisher=publisher) for n in names]
    out: dict[str, Any] = {"size": size.name, "agents": size.agents, "rounds": rounds, "n": {}}
    try:
        for e in exps:  # the fills, a rate-limit window apart (one Rocket.Chat user for all)
            if not e.poll(advance=False).ok:
                raise RuntimeError(f"{e.name}: fill failed")
            clock.advance(sizes.RATE_WINDOW)
        say(f"servers: {len(exps)} fills done")
        for n in counts:
            publisher = timed_publisher(names[:n], KEEP_SNAPSHOTS)
            for e in exps[:n]:
                e.publisher = e.poller.publisher = publisher
            updates: list[Poll] = []
            for r in range(rounds):
                for e in exps[:n]:
                    p = e.poll(advance=False)
                    if not p.ok:
                        raise RuntimeError(f"{e.name}: poll failed with {n} servers")
                    if r > 0:  # the first round renders every part a first time
                        updates.append(p)
                    clock.advance(sizes.POLL_INTERVAL / n)
            out["n"][str(n)] = {
                "update_cpu": statistics.median(p.stages.total for p in updates),
                "publish_cpu": statistics.median(p.stages.render for p in updates),
                "update_wall": statistics.median(p.wall for p in updates),
                "gc_cpu": statistics.median(p.stages.gc for p in updates),
                "fresh_parts": sum(v.snapshot is not None for v in publisher.views(clock.now())),
                "page_bytes": len(publisher.page(clock.now())),
            }
            say(f"servers: N={n}, update {out['n'][str(n)]['update_cpu'] * 1000:.0f} ms")
        base = out["n"][str(counts[0])]["update_cpu"]
        from .report import fitted_exponent

        out["exponent"] = fitted_exponent([(int(n), f["update_cpu"]) for n, f in out["n"].items()])
        out["ratio_max_to_first"] = out["n"][str(counts[-1])]["update_cpu"] / base
        return out
    finally:
        for e in exps:
            e.close()
        sim.stop()
