"""Prometheus text exposition (format 0.0.4), rendered per server once per poll, joined into bytes.

We render by hand instead of through prometheus_client collectors: the page is built once per
snapshot (not per scrape) and with tens of thousands of per-agent series that is both the
cheapest and the simplest way. `promtool check metrics` must accept the output.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from operator import attrgetter

from exporter.exposition_departments import DEPARTMENT_FAMILIES
from exporter.exposition_servicelevel import SERVICE_LEVEL_FAMILIES
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
    stalled: str = ""  # the watchdog's verdict: why the poller is stuck or gone ("" if fine)
    # The history cache's fill: days cached (fractional while a day is being paged) of the
    # days wanted, and the estimated seconds left (None when not known yet).
    fill_days: float = 0.0
    fill_wanted: int = 0
    fill_eta: float | None = None

    @property
    def fill_ratio(self) -> float:
        if self.fill_wanted:
            return min(1.0, self.fill_days / self.fill_wanted)
        return 1.0 if self.last_success is not None else 0.0


@dataclass(frozen=True)
class ServerView:
    health: ServerHealth
    snapshot: ServerSnapshot | None  # None before the first success or once stale


Sample = tuple[str, float]  # (rendered label set including braces, value)
Lines = Callable[[str, ServerView], list[str]]  # (metric name, one server) -> sample lines
# One agent's rendered lines of one family, by agent: the figures they were rendered from,
# the line per window, and the lines joined.
Memo = dict[str, tuple[tuple, list[str], str]]
# (metric name, one server, the previous render's memo, the memo to fill) -> text chunks
MemoLines = Callable[[str, ServerView, Memo, Memo], list[str]]


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # gauge | counter | histogram
    help: str
    lines: Lines | None = field(default=None, repr=False)
    # Per-agent families too large to re-render every poll keep each agent's text between
    # renders and reuse it while its values are the same (most agents, most polls).
    memo_lines: MemoLines | None = field(default=None, repr=False)
    # What the lines are made from: the snapshot (the default), or the exporter's health
    # only. A re-render for a new health with the same snapshot redoes only the latter.
    reads: str = "snapshot"


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


def _agent_window_lines(attr: str) -> MemoLines:
    """Per agent and window: three quarters of a large page. Each agent's lines are one chunk,
    reused from the previous render when the agent's figures are the same; otherwise only the
    lines whose value moved are formatted again (today's ratio moves every poll for every
    agent with time today, the other windows' lines mostly do not)."""
    value = attrgetter(attr)

    def lines(name: str, view: ServerView, old: Memo, new: Memo) -> list[str]:
        snap = view.snapshot
        if snap is None:
            return []
        server = escape_label(snap.server)
        out = []
        for row in snap.agents:
            windows = row.windows
            kept = old.get(row.agent)
            # The past-days memo hands back the same AgentWindow objects while their figures
            # hold, so this comparison is mostly identity checks.
            if kept is not None and kept[0] == windows:
                new[row.agent] = kept
                out.append(kept[2])
                continue
            head = f'{name}{{server="{server}",agent="{escape_label(row.agent)}",window="'
            if kept is not None and len(kept[0]) == len(windows):
                fresh = [
                    line
                    if was[0] == window and value(was[1]) == value(stats)
                    else f'{head}{escape_label(window)}"}} {fmt(value(stats))}\n'
                    for (window, stats), was, line in zip(windows, kept[0], kept[1], strict=True)
                ]
            else:
                fresh = [
                    f'{head}{escape_label(window)}"}} {fmt(value(stats))}\n'
                    for window, stats in windows
                ]
            text = "".join(fresh)
            new[row.agent] = (windows, fresh, text)
            out.append(text)
        return out

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


def _window_status(index: int):
    def extract(view: ServerView) -> Iterable[Sample]:
        snap = view.snapshot
        if snap is not None:
            for status in snap.window_status:
                yield _labels(server=snap.server, window=status[0]), int(status[index])

    return extract


def _requests(view: ServerView) -> Iterable[Sample]:
    for endpoint, code, count in view.health.requests:
        yield _labels(server=view.health.server, endpoint=endpoint, code=code), count


def _labelled(extract: Callable[[ServerSnapshot], Iterable[tuple[dict[str, str], float]]]):
    """Samples from an extractor of (labels, value) pairs over a snapshot (departments)."""

    def samples(view: ServerView) -> Iterable[Sample]:
        if view.snapshot is not None:
            for labels, value in extract(view.snapshot):
                yield _labels(**labels), value

    return samples


def _suffixed(extract: Callable[[ServerSnapshot], Iterable[tuple[str, dict[str, str], float]]]):
    """Lines from (suffix, labels, value) triples: histograms' _bucket, _sum and _count."""

    def lines(name: str, view: ServerView) -> list[str]:
        if view.snapshot is None:
            return []
        return [
            f"{name}{suffix}{_labels(**labels)} {fmt(value)}\n"
            for suffix, labels, value in extract(view.snapshot)
        ]

    return lines


def _poll_errors(view: ServerView) -> Iterable[Sample]:
    for reason, count in view.health.poll_errors:
        yield _labels(server=view.health.server, reason=reason), count


FAMILIES: tuple[Family, ...] = (
    Family(
        "agent_available_seconds",
        "gauge",
        "Seconds the agent was available for service within the window (closed sessions, plus"
        " the observed open session unless disabled).",
        memo_lines=_agent_window_lines("seconds"),
    ),
    Family(
        "agent_available_ratio",
        "gauge",
        "Available seconds divided by the window's elapsed length (0..1).",
        memo_lines=_agent_window_lines("ratio"),
    ),
    Family(
        "agent_service_intervals",
        "gauge",
        "Merged availability intervals overlapping the window (an open session counts as one).",
        memo_lines=_agent_window_lines("intervals"),
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
        _samples(_snapshot_value(lambda s: s.missing_agents)),
    ),
    Family(
        "window_complete",
        "gauge",
        "1 if every day the window touches is in the history cache, 0 while the cache fills"
        " (the window's other series are absent until then).",
        _samples(_window_status(1)),
    ),
    Family(
        "window_agents_missing",
        "gauge",
        "Agents Rocket.Chat counted but did not return on a day the window touches (the"
        " largest count over those days; pagination rejected or capped).",
        _samples(_window_status(2)),
    ),
    Family(
        "history_anomalies",
        "gauge",
        "History entries skipped or merged while parsing the cached days, by kind.",
        _samples(_anomalies),
    ),
    Family(
        "server_info",
        "gauge",
        "1 for every configured Rocket.Chat server, from the exporter's start (use it for"
        " dashboard variables and absence alerts).",
        _samples(_health_value(lambda h: 1)),
        reads="health",
    ),
    Family(
        "fill_progress_ratio",
        "gauge",
        "Share of the history cache's days fetched (0..1); 1 once the cache is full.",
        _samples(_health_value(lambda h: h.fill_ratio)),
        reads="health",
    ),
    Family(
        "fill_eta_seconds",
        "gauge",
        "Estimated seconds until the history cache is full: 0 once full, absent while a fill"
        " has no estimate yet (before its first day arrived).",
        _samples(_health_value(lambda h: 0.0 if h.fill_ratio >= 1 else h.fill_eta)),
        reads="health",
    ),
    Family(
        "up",
        "gauge",
        "1 if the last poll of this Rocket.Chat server fully succeeded, else 0.",
        # Absent until a first poll has finished: that poll fills the cache and, paced by
        # Rocket.Chat's rate limit, can take half an hour for a large team; 0 would claim a
        # failure (and page) where there is none yet.
        _samples(_health_value(lambda h: int(h.up) if h.last_poll is not None else None)),
        reads="health",
    ),
    Family(
        "last_success_timestamp_seconds",
        "gauge",
        "Unix time of the last fully successful poll.",
        _samples(_health_value(lambda h: h.last_success)),
        reads="health",
    ),
    Family(
        "poll_duration_seconds",
        "gauge",
        "Duration of the last poll, including waits imposed by Rocket.Chat's rate limit.",
        _samples(_health_value(lambda h: h.poll_duration)),
        reads="health",
    ),
    Family(
        "poll_interval_seconds",
        "gauge",
        "Effective poll interval: the configured one, stretched when a poll takes longer.",
        _samples(_health_value(lambda h: h.poll_interval)),
        reads="health",
    ),
    Family(
        "api_requests_total",
        "counter",
        "Requests made to Rocket.Chat by endpoint and HTTP status (error = no answer).",
        _samples(_requests),
        reads="health",
    ),
    Family(
        "poll_errors_total",
        "counter",
        "Failed polls by reason.",
        _samples(_poll_errors),
        reads="health",
    ),
)
# Departments, queue and load: absent unless `departments` is on (docs/departments.md).
FAMILIES += tuple(
    Family(name, kind, help_text, _samples(_labelled(extract)))
    for name, kind, help_text, extract in DEPARTMENT_FAMILIES
)

# Service level: absent unless `service_level` is on (docs/service-level.md).
FAMILIES += tuple(
    Family(name, kind, help_text, _suffixed(extract))
    for name, kind, help_text, extract in SERVICE_LEVEL_FAMILIES
)

# build_info and process_* are appended per scrape by the web layer (process_metrics.py).
METRIC_NAMES: tuple[str, ...] = tuple(PREFIX + f.name for f in FAMILIES)
# The names samples carry: a histogram's are its `_bucket`, `_sum` and `_count`.
SAMPLE_NAMES: tuple[str, ...] = tuple(
    PREFIX + f.name + suffix
    for f in FAMILIES
    for suffix in (("_bucket", "_sum", "_count") if f.kind == "histogram" else ("",))
)
