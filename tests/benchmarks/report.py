"""The results as one table (figures down, sizes across) and the scaling fit."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from . import sizes

Result = dict[str, Any]


def fitted_exponent(points: Sequence[tuple[float, float]]) -> float | None:
    """k in y = c * x^k, least squares on log-log; None with fewer than two sizes."""
    pts = [(math.log(x), math.log(y)) for x, y in points if x > 0 and y > 0]
    if len({x for x, _ in pts}) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    sxy = sum((x - mx) * (y - my) for x, y in pts)
    return sxy / sxx


def scaling(results: Sequence[Result]) -> dict[str, float | None]:
    """Poll CPU against agents, for the sizes that export per-agent series (same work)."""
    same = [r for r in results if r["per_agent"]]
    return {
        "steady": fitted_exponent([(r["agents"], r["cpu"]["steady"]["work"]) for r in same]),
        "fill": fitted_exponent([(r["agents"], r["cpu"]["fill"]["work"]) for r in same]),
    }


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 1 else f"{ms:.2f}"


def _s(seconds: float) -> str:
    return f"{seconds:.3f} s" if seconds < 10 else f"{seconds:.1f} s"


def _n(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.1f}"


def _mib(kib: float) -> str:
    return f"{kib / 1024:.0f} MiB"


def _interval(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 600 else f"{seconds / 60:.0f} min"


def _lat(s: dict[str, Any]) -> str:
    return f"{_ms(s['p50'])} / {_ms(s['p99'])}"


Row = tuple[str, Callable[[Result], str]]

ROWS: tuple[Row | str, ...] = (
    ("agents", lambda r: _n(r["agents"]) + ("" if r["per_agent"] else " (team only)")),
    ("series on /metrics", lambda r: _n(r["scrape"]["series"])),
    "Rocket.Chat requests (counted by the simulator): history + status",
    (
        "initial fill",
        lambda r: f"{r['rocketchat']['fill_history']} + {r['rocketchat']['fill_status']}",
    ),
    (
        "initial fill, paced by rate limit",
        lambda r: _interval(r["rocketchat"]["fill_paced_seconds"]),
    ),
    (
        "steady poll",
        lambda r: (
            f"{_n(r['rocketchat']['steady_history'])} + {_n(r['rocketchat']['steady_status'])}"
        ),
    ),
    (
        "expected: today's pages + status pages",
        lambda r: (
            f"{_n(r['rocketchat']['expected_history'])} + {r['rocketchat']['expected_status']}"
        ),
    ),
    (
        "naive: a chain per window per poll",
        lambda r: f"{r['rocketchat']['naive_history']} + {r['rocketchat']['naive_status']}",
    ),
    ("429 answers (limit 10 per 60 s)", lambda r: str(r["rocketchat"]["responses_429"])),
    (
        "poll_interval_seconds (exposed)",
        lambda r: _interval(r["rocketchat"]["poll_interval_metric"]),
    ),
    ("naive design would need", lambda r: _interval(r["rocketchat"]["naive_poll_interval"])),
    "Poll CPU (poller thread): decode + compute + render",
    ("initial fill", lambda r: _s(r["cpu"]["fill"]["work"])),
    ("initial fill: json.loads alone", lambda r: _s(r["cpu"]["fill"]["json"])),
    (
        "initial fill: ratio to json.loads",
        lambda r: f"{r['cpu']['fill']['work'] / r['cpu']['fill']['json']:.1f}x",
    ),
    ("steady poll", lambda r: _s(r["cpu"]["steady"]["work"])),
    (
        "steady: decode / compute / render",
        lambda r: (
            " / ".join(_ms(r["cpu"]["steady"][k]) for k in ("decode", "compute", "render")) + " ms"
        ),
    ),
    ("steady: json.loads alone", lambda r: _s(r["cpu"]["steady"]["json"])),
    (
        "steady: ratio to json.loads",
        lambda r: f"{r['cpu']['steady']['work'] / r['cpu']['steady']['json']:.1f}x",
    ),
    ("steady: whole poll incl. HTTP client", lambda r: _s(r["cpu"]["steady"]["total"])),
    (
        "steady: of which garbage collection",
        lambda r: f"{_ms(r['cpu']['steady']['gc'])} ms, {r['cpu']['gc_full_per_poll']:.1f} full",
    ),
    "Scrape latency, 4 concurrent scrapers: p50 / p99 ms",
    ("floor: static bytes, stdlib server", lambda r: _lat(r["scrape"]["floor"])),
    ("exporter /metrics", lambda r: _lat(r["scrape"]["exporter"])),
    ("prometheus_client generate_latest", lambda r: _lat(r["scrape"]["prometheus_client"])),
    (
        "exporter / floor (p50, p99)",
        lambda r: "{:.2f}x, {:.2f}x".format(
            *(r["scrape"]["exporter"][k] / r["scrape"]["floor"][k] for k in ("p50", "p99"))
        ),
    ),
    (
        "prometheus_client / exporter (p50)",
        lambda r: (
            f"{r['scrape']['prometheus_client']['p50'] / r['scrape']['exporter']['p50']:.0f}x"
        ),
    ),
    "Memory",
    ("peak RSS", lambda r: _mib(r["memory"]["peak_rss_kib"])),
)


def table(results: Sequence[Result], growth: Result | None, machine: dict[str, Any]) -> str:
    header = ["", *(r["size"] for r in results)]
    lines: list[list[str]] = [header]
    for row in ROWS:
        if isinstance(row, str):
            lines.append([row])
            continue
        label, cell = row
        lines.append(["  " + label, *(cell(r) for r in results)])
    width = max(len(line[0]) for line in lines if len(line) > 1)
    cols = [max(len(line[i]) for line in lines if len(line) > 1) for i in range(1, len(header))]
    out = []
    for line in lines:
        if len(line) == 1:
            out.append(line[0])
            continue
        cells = [c.rjust(w) for c, w in zip(line[1:], cols, strict=True)]
        out.append("  ".join([line[0].ljust(width), *cells]).rstrip())
    fit = scaling(results)
    notes = []
    if fit["steady"] is not None:
        notes.append(
            f"Scaling: poll CPU ~ agents^k, k = {fit['steady']:.2f} steady, "
            f"{fit['fill']:.2f} initial fill (least squares on log-log, per-agent sizes)"
        )
    if growth is not None:
        notes.append(
            f"Memory growth at {growth['size']} over {growth['polls']:,} polls "
            f"({growth['simulated_hours']:.0f} simulated hours, past midnight): "
            f"{growth['growth_kib'] / 1024:+.1f} MiB (largest {growth['max_growth_kib'] / 1024:+.1f})"
        )
    notes.append(
        f"Windows {', '.join(sizes.WINDOWS)}; {sizes.HISTORY_DAYS} days of history, about "
        f"{sizes.INTERVALS_PER_DAY} sessions per agent per working day; poll interval "
        f"{sizes.POLL_INTERVAL:g} s"
    )
    notes.append(machine_line(machine))
    return "\n".join(out + [""] + notes)


def machine_line(m: dict[str, Any]) -> str:
    return (
        f"Machine: {m['cpu_model']}, {m['nproc']} CPUs, {m['ram_gib']:.0f} GiB RAM, "
        f"Python {m['python']}, {m['platform']}"
    )
