"""Prometheus text exposition (format 0.0.4), rendered once per poll, served as bytes.

We render by hand instead of through prometheus_client collectors: the page is built once per
snapshot (not per scrape) and with tens of thousands of per-agent series that is both the
cheapest and the simplest way. `promtool check metrics` must accept the output.
"""

from __future__ import annotations

import gzip
import math
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from operator import attrgetter

from exporter import __version__
from exporter.model import ParseStats
from exporter.snapshot import ServerSnapshot

PREFIX = "rocketchat_omnichannel_"
POLLED = " Computed by background polling of Rocket.Chat, not at scrape time."
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class ServerHealth:
    """The exporter's own view of polling one server. Always exported, even when stale."""

    server: str
    up: bool = False
    last_success: float | None = None
    last_poll: float | None = None
    poll_duration: float | None = None
    poll_interval: float = 60.0
    requests: tuple[tuple[str, str, int], ...] = ()  # (endpoint, code, count)
    poll_errors: tuple[tuple[str, int], ...] = ()  # (reason, count)
    last_error: str = ""
    warnings: tuple[str, ...] = ()  # standing problems worth a look (landing page only)


@dataclass(frozen=True)
class ServerView:
    health: ServerHealth
    snapshot: ServerSnapshot | None  # None before the first success or once stale


Sample = tuple[str, float]  # (rendered label set including braces, value)
Lines = Callable[[str, ServerView], list[str]]  # (metric name, one server) -> sample lines


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # gauge | counter
    help: str
    lines: Lines = field(repr=False)


@lru_cache(maxsize=1 << 16)
def escape_label(value: str) -> str:
    # Cached: the same agent names are escaped for several families on every render.
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def fmt(value: float) -> str:
    # Fast paths for the two kinds nearly every sample is: finite floats and plain ints.
    kind = type(value)
    if kind is float:
        if value.is_integer():
            if -1e15 < value < 1e15:
                return str(int(value))
        elif -math.inf < value < math.inf:  # finite (NaN fails every comparison)
            return repr(value)
    elif kind is int:
        return str(value)
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _labels(**labels: str) -> str:
    inner = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items())
    return "{" + inner + "}"


# ---- sample extractors, one per family -------------------------------------------------------


def _samples(extract: Callable[[ServerView], Iterable[Sample]]) -> Lines:
    """Lines from an extractor of (label set, value) pairs."""

    def lines(name: str, view: ServerView) -> list[str]:
        return [f"{name}{labels} {fmt(value)}\n" for labels, value in extract(view)]

    return lines


def _agent_window_lines(attr: str) -> Lines:
    """Per agent and window: three quarters of a large page, so built straight to lines, with
    each agent's label prefix made once."""
    value = attrgetter(attr)

    def lines(name: str, view: ServerView) -> list[str]:
        snap = view.snapshot
        if snap is None:
            return []
        server = escape_label(snap.server)
        heads = (
            (f'{name}{{server="{server}",agent="{escape_label(row.agent)}",window="', row.windows)
            for row in snap.agents
        )
        return [
            f'{head}{escape_label(window)}"}} {fmt(value(stats))}\n'
            for head, windows in heads
            for window, stats in windows
        ]

    return lines


def _agent_samples(value: Callable):
    def extract(view: ServerView) -> Iterable[Sample]:
        snap = view.snapshot
        if snap is None:
            return
        server = escape_label(snap.server)
        for row in snap.agents:
            v = value(row)
            if v is not None:
                yield f'{{server="{server}",agent="{escape_label(row.agent)}"}}', v

    return extract


def _reported(view: ServerView) -> Iterable[Sample]:
    snap = view.snapshot
    if snap is None:
        return
    server = escape_label(snap.server)
    for row in snap.agents:
        if row.reported:
            head = f'{{server="{server}",agent="{escape_label(row.agent)}",window="'
            for window, seconds in row.reported:
                yield f'{head}{escape_label(window)}"}}', seconds


def _team_samples(value: Callable):
    def extract(view: ServerView) -> Iterable[Sample]:
        snap = view.snapshot
        if snap is None:
            return
        for window, team in snap.team:
            v = value(team)
            if v is not None:
                yield _labels(server=snap.server, window=window), v

    return extract


def _snapshot_value(value: Callable):
    def extract(view: ServerView) -> Iterable[Sample]:
        if view.snapshot is not None:
            v = value(view.snapshot)
            if v is not None:
                yield _labels(server=view.snapshot.server), v

    return extract


def _status_counts(view: ServerView) -> Iterable[Sample]:
    if view.snapshot is not None:
        for status, count in view.snapshot.status_counts:
            yield _labels(server=view.snapshot.server, status=status), count


def _anomalies(view: ServerView) -> Iterable[Sample]:
    if view.snapshot is not None:
        stats: ParseStats = view.snapshot.anomalies
        for kind in ("skipped_entries", "skipped_agents", "merged_entries"):
            yield _labels(server=view.snapshot.server, kind=kind), getattr(stats, kind)


def _health_value(value: Callable):
    def extract(view: ServerView) -> Iterable[Sample]:
        v = value(view.health)
        if v is not None:
            yield _labels(server=view.health.server), v

    return extract


def _requests(view: ServerView) -> Iterable[Sample]:
    for endpoint, code, count in view.health.requests:
        yield _labels(server=view.health.server, endpoint=endpoint, code=code), count


def _poll_errors(view: ServerView) -> Iterable[Sample]:
    for reason, count in view.health.poll_errors:
        yield _labels(server=view.health.server, reason=reason), count


FAMILIES: tuple[Family, ...] = (
    Family(
        "agent_available_seconds",
        "gauge",
        "Seconds the agent was available for service within the window (closed sessions, plus"
        " the observed open session unless disabled).",
        _agent_window_lines("seconds"),
    ),
    Family(
        "agent_available_ratio",
        "gauge",
        "Available seconds divided by the window's elapsed length (0..1).",
        _agent_window_lines("ratio"),
    ),
    Family(
        "agent_service_intervals",
        "gauge",
        "Merged availability intervals overlapping the window (an open session counts as one).",
        _agent_window_lines("intervals"),
    ),
    Family(
        "agent_reported_available_seconds",
        "gauge",
        "Rocket.Chat's own availableTimeInSeconds for the calendar day (today/yesterday windows).",
        _samples(_reported),
    ),
    Family(
        "agent_last_available_timestamp_seconds",
        "gauge",
        "Unix time at which the agent's latest closed availability interval ended.",
        _samples(_agent_samples(lambda r: r.last_available)),
    ),
    Family(
        "agent_available",
        "gauge",
        "1 if the agent is available now (statusLivechat available and presence not offline).",
        _samples(_agent_samples(lambda r: None if r.available is None else int(r.available))),
    ),
    Family(
        "agent_open_session_seconds",
        "gauge",
        "Observed length of the agent's current, not yet closed availability session (0 if none).",
        _samples(_agent_samples(lambda r: r.open_session_seconds)),
    ),
    Family(
        "agents_active",
        "gauge",
        "Agents with at least one availability interval in the window.",
        _samples(_team_samples(lambda t: t.active)),
    ),
    Family(
        "available_agents_min",
        "gauge",
        "Minimum number of concurrently available agents over the window.",
        _samples(_team_samples(lambda t: t.min)),
    ),
    Family(
        "available_agents_max",
        "gauge",
        "Maximum number of concurrently available agents over the window.",
        _samples(_team_samples(lambda t: t.max)),
    ),
    Family(
        "available_agents_avg",
        "gauge",
        "Time-weighted mean number of concurrently available agents over the window.",
        _samples(_team_samples(lambda t: t.avg)),
    ),
    Family(
        "unstaffed_seconds",
        "gauge",
        "Seconds of the window during which no agent was available.",
        _samples(_team_samples(lambda t: t.unstaffed_seconds)),
    ),
    Family(
        "understaffed_seconds",
        "gauge",
        "Seconds of the window during which fewer agents were available than the staffing"
        " schedule required at that moment.",
        _samples(_team_samples(lambda t: t.understaffed_seconds)),
    ),
    Family(
        "required_agents",
        "gauge",
        "Agents required now by the configured staffing schedule.",
        _samples(_snapshot_value(lambda s: s.required_agents)),
    ),
    Family(
        "agents",
        "gauge",
        "Agents by live status (available, away, busy, offline) as Rocket.Chat's agents-status"
        " chart defines them.",
        _samples(_status_counts),
    ),
    Family(
        "agents_truncated",
        "gauge",
        "Agents Rocket.Chat counted for today but did not return (pagination rejected or capped).",
        _samples(_snapshot_value(lambda s: s.truncated)),
    ),
    Family(
        "history_anomalies",
        "gauge",
        "History entries skipped or merged while parsing the cached days, by kind.",
        _samples(_anomalies),
    ),
    Family(
        "up",
        "gauge",
        "1 if the last poll of this Rocket.Chat server fully succeeded, else 0.",
        # Absent until a first poll has finished: that poll fills the cache and, paced by
        # Rocket.Chat's rate limit, can take half an hour for a large team; 0 would claim a
        # failure (and page) where there is none yet.
        _samples(_health_value(lambda h: int(h.up) if h.last_poll is not None else None)),
    ),
    Family(
        "last_success_timestamp_seconds",
        "gauge",
        "Unix time of the last fully successful poll.",
        _samples(_health_value(lambda h: h.last_success)),
    ),
    Family(
        "poll_duration_seconds",
        "gauge",
        "Duration of the last poll, including waits imposed by Rocket.Chat's rate limit.",
        _samples(_health_value(lambda h: h.poll_duration)),
    ),
    Family(
        "poll_interval_seconds",
        "gauge",
        "Effective poll interval: the configured one, stretched when a poll takes longer.",
        _samples(_health_value(lambda h: h.poll_interval)),
    ),
    Family(
        "api_requests_total",
        "counter",
        "Requests made to Rocket.Chat by endpoint and HTTP status (error = no answer).",
        _samples(_requests),
    ),
    Family(
        "poll_errors_total",
        "counter",
        "Failed polls by reason.",
        _samples(_poll_errors),
    ),
)

METRIC_NAMES: tuple[str, ...] = tuple(PREFIX + f.name for f in FAMILIES) + (
    PREFIX + "exporter_build_info",
)


def render(views: Sequence[ServerView]) -> bytes:
    """The whole /metrics page for these servers, in the classic text format."""
    out: list[str] = []
    for family in FAMILIES:
        name = PREFIX + family.name
        lines = [line for view in views for line in family.lines(name, view)]
        if not lines:
            continue
        out.append(f"# HELP {name} {family.help}{POLLED}\n# TYPE {name} {family.kind}\n")
        out.extend(lines)
    name = PREFIX + "exporter_build_info"
    out.append(
        f"# HELP {name} Build information of the exporter (constant 1).\n# TYPE {name} gauge\n"
        f"{name}{_labels(version=__version__)} 1\n"
    )
    return "".join(out).encode("utf-8")


class Publisher:
    """Holds each server's latest health and last good snapshot, and the rendered page.

    The poller threads call `update`; HTTP handlers call `page`. Rendering happens once per
    update (and once more when a snapshot crosses `max_staleness`), never per scrape.
    """

    def __init__(self, servers: Sequence[str], max_staleness: float):
        self.max_staleness = max_staleness
        self._lock = threading.Lock()
        self._health = {name: ServerHealth(server=name) for name in servers}
        self._snapshots: dict[str, ServerSnapshot] = {}
        self._rendered_for: tuple | None = None
        self._page = b""
        self._page_gz = b""

    def update(self, health: ServerHealth, snapshot: ServerSnapshot | None, now: float) -> None:
        """Record a poll's outcome; `snapshot` None keeps the previous good one."""
        with self._lock:
            self._health[health.server] = health
            if snapshot is not None:
                self._snapshots[health.server] = snapshot
            self._render_locked(now, force=True)

    def page(self, now: float, gzipped: bool = False) -> bytes:
        with self._lock:
            self._render_locked(now, force=False)
            return self._page_gz if gzipped else self._page

    def views(self, now: float) -> list[ServerView]:
        with self._lock:
            return self._views_locked(now)

    def ready(self) -> bool:
        with self._lock:
            return all(h.last_success is not None for h in self._health.values())

    def _fresh(self, now: float) -> dict[str, ServerSnapshot]:
        return {
            name: snap
            for name, snap in self._snapshots.items()
            if now - snap.taken_at <= self.max_staleness
        }

    def _views_locked(self, now: float) -> list[ServerView]:
        fresh = self._fresh(now)
        return [ServerView(h, fresh.get(name)) for name, h in self._health.items()]

    def _render_locked(self, now: float, force: bool) -> None:
        key = tuple(sorted(self._fresh(now)))
        if not force and key == self._rendered_for:
            return
        self._page = render(self._views_locked(now))
        # Level 1: most of the gain at a fraction of the CPU; done once per render.
        self._page_gz = gzip.compress(self._page, compresslevel=1, mtime=0)
        self._rendered_for = key
