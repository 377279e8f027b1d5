"""The results as tables (figures down, sizes and old/new code across) and the scaling fits."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from . import sizes

Result = dict[str, Any]
NA = "n/a"  # a figure this code cannot produce (say why in a note), never an invented one


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
    """Poll CPU against agents, for the sizes that export per-agent series (same work).
    `*_from_m`: sizes of 500 agents and more (the issue's M to XL)."""
    same = [r for r in results if r["per_agent"]]
    big = [r for r in same if r["agents"] >= sizes.SIZES["M"].agents]
    return {
        "steady": fitted_exponent([(r["agents"], r["cpu"]["steady"]["work"]) for r in same]),
        "fill": fitted_exponent([(r["agents"], r["cpu"]["fill"]["work"]) for r in same]),
        "steady_from_m": fitted_exponent([(r["agents"], r["cpu"]["steady"]["total"]) for r in big]),
        "gc_from_m": fitted_exponent([(r["agents"], r["cpu"]["gc_per_poll"]) for r in big]),
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
    if seconds < 10:
        return f"{seconds:.1f} s"
    return f"{seconds:.0f} s" if seconds < 600 else f"{seconds / 60:.0f} min"


def _pair(a: float, b: float) -> str:
    return f"{_n(a)} + {_n(b)}"


def _lat(s: dict[str, Any] | None) -> str:
    return NA if s is None else f"{_ms(s['p50'])} / {_ms(s['p99'])}"


def _both(r: Result, phase: str, server: str) -> str:
    s = r["scrape"][phase][server]
    return NA if s is None else f"{_lat(s['plain'])}, gz {_lat(s['gzip'])}"


def _p99_ratio(r: Result, num: tuple[str, str], den: tuple[str, str]) -> str:
    sc = r["scrape"]
    a, b = sc[num[0]][num[1]], sc[den[0]][den[1]]
    if a is None or b is None:
        return NA
    return ", ".join(f"{a[k]['p99'] / b[k]['p99']:.2f}x" for k in ("plain", "gzip"))


def _q(q: dict[str, float]) -> str:
    return " / ".join(_ms(q[k]) for k in ("p50", "p95", "max"))


Row = tuple[str, Callable[[Result], str]]

ROWS: tuple[Row | str, ...] = (
    ("agents", lambda r: _n(r["agents"]) + ("" if r["per_agent"] else " (team only)")),
    ("series on /metrics", lambda r: _n(r["scrape"]["series"])),
    "Rocket.Chat requests, history + status (counted by the simulator)",
    (
        "steady poll",
        lambda r: _pair(r["rocketchat"]["steady_history"], r["rocketchat"]["steady_status"]),
    ),
    ("  floor (physical)", lambda r: _pair(r["rocketchat"]["floor_steady_history"], 1)),
    (
        "initial fill",
        lambda r: _pair(r["rocketchat"]["fill_history"], r["rocketchat"]["fill_status"]),
    ),
    ("  floor: one per day", lambda r: _pair(r["rocketchat"]["floor_fill_history"], 1)),
    (
        "fill time (simulated, rate-limit paced)",
        lambda r: _interval(r["rocketchat"]["fill_paced_seconds"]),
    ),
    (
        "effective poll interval (exposed)",
        lambda r: _interval(r["rocketchat"]["poll_interval_metric"]),
    ),
    ("429 answers (limit 10 per 60 s)", lambda r: str(r["rocketchat"]["responses_429"])),
    "Same, Rocket.Chat with API_Allow_Infinite_Count off (pages of 100)",
    (
        "steady poll",
        lambda r: _pair(r["count_off"]["steady_history"], r["count_off"]["steady_status"]),
    ),
    (
        "initial fill",
        lambda r: _pair(r["count_off"]["fill_history"], r["count_off"]["fill_status"]),
    ),
    (
        "fill time (simulated, rate-limit paced)",
        lambda r: _interval(r["count_off"]["fill_paced_seconds"]),
    ),
    ("effective poll interval", lambda r: _interval(r["count_off"]["poll_interval"])),
    "Poll CPU (poller thread), steady = median of the afternoon polls",
    ("initial fill: decode + compute + render", lambda r: _s(r["cpu"]["fill"]["work"])),
    ("steady: decode + compute + render", lambda r: _s(r["cpu"]["steady"]["work"])),
    (
        "steady: decode / compute / render ms",
        lambda r: " / ".join(_ms(r["cpu"]["steady"][k]) for k in ("decode", "compute", "render")),
    ),
    ("steady: json.loads alone", lambda r: _s(r["cpu"]["steady"]["json"])),
    ("steady: whole poll incl. HTTP client", lambda r: _s(r["cpu"]["steady"]["total"])),
    (
        "steady: GC ms per poll, full collections",
        lambda r: f"{_ms(r['cpu']['gc_per_poll'])}, {r['cpu']['gc_full_per_poll']:.1f} full",
    ),
    ("steady: GC share of the poll", lambda r: f"{100 * r['cpu']['gc_share']:.1f} %"),
    "Worst-case polls: afternoon + one a minute 23:50-00:10, whole poll",
    (
        "polls (of them 23:50-00:10)",
        lambda r: f"{r['worst']['polls']} ({r['worst']['night_polls']})",
    ),
    ("CPU p50 / p95 / max ms", lambda r: _q(r["worst"]["cpu"])),
    ("wall p50 / p95 / max ms", lambda r: _q(r["worst"]["wall"])),
    ("slowest poll at", lambda r: r["worst"]["slowest_at"]),
    (
        "past part rebuilt 23:50-00:10",
        lambda r: f"{r['worst']['midnight_builds']}x " + ",".join(r["worst"]["rebuilt_at"]),
    ),
    "Scrape latency, 4 concurrent scrapers: p50 / p99 ms, plain and gzip",
    ("idle: exporter", lambda r: _both(r, "idle", "exporter")),
    ("idle: floor, nginx static file", lambda r: _both(r, "idle", "nginx")),
    ("polls running: exporter", lambda r: _both(r, "polling", "exporter")),
    ("polls running: nginx", lambda r: _both(r, "polling", "nginx")),
    ("polls during those scrapes", lambda r: str(r["scrape"]["polling"]["polls"])),
    (
        "exporter p99 polls running / idle",
        lambda r: _p99_ratio(r, ("polling", "exporter"), ("idle", "exporter")),
    ),
    (
        "exporter / nginx p99, idle",
        lambda r: _p99_ratio(r, ("idle", "exporter"), ("idle", "nginx")),
    ),
    ("prometheus_client generate_latest", lambda r: _lat(r["scrape"]["prometheus_client"])),
    "Memory",
    ("peak RSS", lambda r: _mib(r["memory"]["peak_rss_kib"])),
)


def _cell(fn: Callable[[Result], str], r: Result) -> str:
    try:
        return fn(r)
    except (KeyError, TypeError, ZeroDivisionError):
        return NA


def columns(new: Sequence[Result], old: Sequence[Result]) -> list[tuple[str, Result]]:
    """Per size: the baseline's column, then main's."""
    by_size = {r["size"]: r for r in old}
    out: list[tuple[str, Result]] = []
    for r in new:
        if r["size"] in by_size:
            out.append((f"{r['size']} old", by_size[r["size"]]))
        out.append((f"{r['size']} new" if old else r["size"], r))
    return out


def _layout(lines: list[list[str]]) -> list[str]:
    width = max(len(line[0]) for line in lines if len(line) > 1)
    n = max(len(line) for line in lines)
    cols = [max(len(line[i]) for line in lines if len(line) > i) for i in range(1, n)]
    out = []
    for line in lines:
        if len(line) == 1:
            out.append(line[0])
            continue
        cells = [c.rjust(w) for c, w in zip(line[1:], cols, strict=False)]
        out.append("  ".join([line[0].ljust(width), *cells]).rstrip())
    return out


def servers_table(new: Result | None, old: Result | None) -> list[str]:
    """One server's update (its poll + its publish) with N servers in the process."""
    runs = [(c, r) for c, r in (("old", old), ("new", new)) if r]
    if not runs:
        return []
    size = runs[0][1]["size"]
    head = (f"{c}: update / publish / GC ms, vs N=1" for c, _ in runs)
    lines = [[f"N servers of size {size}", *head]]
    for n in runs[0][1]["n"]:
        row = [f"  N = {n}"]
        for _c, r in runs:
            f, base = r["n"][n], r["n"][next(iter(r["n"]))]
            row.append(
                f"{_ms(f['update_cpu'])} / {_ms(f['publish_cpu'])} / {_ms(f.get('gc_cpu', 0))}, "
                f"{f['update_cpu'] / base['update_cpu']:.2f}x"
            )
        lines.append(row)
    fit = ["  fitted exponent (update CPU ~ N^k)"]
    fit += [NA if r.get("exponent") is None else f"k = {r['exponent']:.2f}" for _c, r in runs]
    lines.append(fit)
    return _layout(lines)


def table(out: dict[str, Any]) -> str:
    new, old = out["results"], out.get("baseline_results") or []
    cols = columns(new, old)
    lines: list[list[str]] = [["", *(name for name, _ in cols)]]
    for row in ROWS:
        if isinstance(row, str):
            lines.append([row])
            continue
        label, fn = row
        lines.append(["  " + label, *(_cell(fn, r) for _, r in cols)])
    text = _layout(lines)
    servers = servers_table(out.get("servers"), out.get("baseline_servers"))
    if servers:
        text += ["", *servers]
    return "\n".join(text + ["", *notes(out)])


def _fit_line(label: str, fit: dict[str, float | None]) -> str | None:
    if fit.get("steady") is None:
        return None
    parts = [f"k = {fit['steady']:.2f} steady work, {fit['fill']:.2f} fill (all sizes)"]
    if fit.get("steady_from_m") is not None:
        parts.append(f"{fit['steady_from_m']:.2f} whole steady poll from M up")
    if fit.get("gc_from_m") is not None:
        parts.append(f"GC time per poll {fit['gc_from_m']:.2f} from M up")
    return f"Scaling, {label}: poll CPU ~ agents^k: " + "; ".join(parts)


def notes(out: dict[str, Any]) -> list[str]:
    lines = []
    base = out.get("baseline") or {}
    if out.get("baseline_results"):
        lines.append(
            f"old = exporter/ of {base.get('rev')} ({(base.get('commit') or '')[:10]}), "
            f"new = this tree ({out['machine'].get('commit')}"
            f"{', exporter/ modified' if out['machine'].get('dirty') else ''}); "
            "same simulator, same machine, same run"
        )
    for label, key in (("new", "scaling_exponent"), ("old", "baseline_scaling_exponent")):
        line = _fit_line(label, out.get(key) or {})
        if line:
            lines.append(line)
    first = (out.get("results") or [{}])[0]
    if first.get("scrape", {}).get("nginx_skipped"):
        lines.append("Scrape floor skipped: " + first["scrape"]["nginx_skipped"])
    growth = out.get("growth")
    if growth is not None:
        lines.append(
            f"Memory growth (new) at {growth['size']} over {growth['polls']:,} polls "
            f"({growth['simulated_hours']:.0f} simulated hours, past midnight): "
            f"{growth['growth_kib'] / 1024:+.1f} MiB (largest {growth['max_growth_kib'] / 1024:+.1f})"
        )
    lines.append(
        f"Windows {', '.join(sizes.WINDOWS)}; {sizes.HISTORY_DAYS} days of history, about "
        f"{sizes.INTERVALS_PER_DAY} sessions per agent per working day; poll interval "
        f"{sizes.POLL_INTERVAL:g} s"
    )
    lines.append(machine_line(out["machine"]))
    return lines


def machine_line(m: dict[str, Any]) -> str:
    return (
        f"Machine: {m['cpu_model']}, {m['nproc']} CPUs, {m['ram_gib']:.0f} GiB RAM, "
        f"Python {m['python']}, {m['platform']}"
    )
