"""Service level from closed chats: histograms and counters that only grow. Pure math.

No httpx, no prometheus_client, no clock reads: the rooms feed (exporter/servicelevel_feed.py)
hands in the rooms of each poll and the instant the next query may start from; this module
decides which rooms are new and adds them to cumulative histograms (Prometheus semantics:
bucket `le` counts observations <= le, `+Inf` counts them all).

De-duplication: a room is counted once, by id. Ids are remembered while their `closedAt` is
within `overlap` of the newest closedAt seen, which is as far back as the next query reaches,
so a room returned by two consecutive queries (the overlap) is never counted twice.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from exporter.model import ClosedRoom

DEFAULT_WAIT_BUCKETS = (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
DEFAULT_RESPONSE_BUCKETS = DEFAULT_WAIT_BUCKETS
DEFAULT_DURATION_BUCKETS = (60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0)
ALL = ""  # the department key when per-department figures are off
__all__ = ["ClosedRoom"]  # re-exported: the value type lives in exporter.model


@dataclass(frozen=True, slots=True)
class Histogram:
    """Cumulative bucket counts aligned with `bounds`, then +Inf (== count)."""

    bounds: tuple[float, ...]
    buckets: tuple[int, ...]  # len(bounds) + 1
    sum: float = 0.0

    @classmethod
    def empty(cls, bounds: tuple[float, ...]) -> Histogram:
        return cls(bounds, (0,) * (len(bounds) + 1))

    @property
    def count(self) -> int:
        return self.buckets[-1]

    def observe(self, values: Iterable[float]) -> Histogram:
        values = list(values)
        if not values:
            return self
        buckets = list(self.buckets)
        for v in values:
            # First bound >= v: that bucket and every later one (cumulative) counts v.
            for i in range(bisect.bisect_left(self.bounds, v), len(buckets)):
                buckets[i] += 1
        return Histogram(self.bounds, tuple(buckets), self.sum + sum(values))


@dataclass(frozen=True, slots=True)
class Figures:
    """One department's (or the whole server's) counters since the exporter started."""

    wait: Histogram
    first_response: Histogram
    duration: Histogram
    closed: int = 0
    abandoned: int = 0


@dataclass(frozen=True, slots=True)
class Buckets:
    wait: tuple[float, ...] = DEFAULT_WAIT_BUCKETS
    first_response: tuple[float, ...] = DEFAULT_RESPONSE_BUCKETS
    duration: tuple[float, ...] = DEFAULT_DURATION_BUCKETS

    def empty(self) -> Figures:
        return Figures(
            Histogram.empty(self.wait),
            Histogram.empty(self.first_response),
            Histogram.empty(self.duration),
        )


@dataclass(frozen=True, slots=True)
class Tally:
    """The accumulated state: figures per department key, and what has been counted."""

    buckets: Buckets
    per_department: bool
    overlap: float
    figures: Mapping[str, Figures] = field(default_factory=dict)
    seen: Mapping[str, float] = field(default_factory=dict)  # room id -> closedAt
    newest: float | None = None  # newest closedAt seen (Rocket.Chat's clock)

    def since(self, fallback: float) -> float:
        """Where the next query's `closedAt.start` must be: `overlap` before the newest."""
        return (self.newest if self.newest is not None else fallback) - self.overlap


def key_of(room: ClosedRoom, per_department: bool) -> str:
    return (room.department or "(none)") if per_department else ALL


def seed(
    tally: Tally, rooms: Iterable[ClosedRoom], now: float, departments: Iterable[str] = ()
) -> Tally:
    """Mark rooms as seen without counting them (the first poll: they closed before we
    started), start the next queries from `now` (Rocket.Chat's clock) minus the overlap, and
    create the zero series of every department known, so that `rate()` sees their first
    increase."""
    rooms = list(rooms)
    keys = {key_of(r, tally.per_department) for r in rooms}
    keys |= set(departments) if tally.per_department else {ALL}
    figures = dict(tally.figures)
    for k in keys:
        figures.setdefault(k, tally.buckets.empty())
    newest = now if tally.newest is None else max(now, tally.newest)
    return _remember(replace(tally, figures=figures, newest=newest), rooms)


def record(tally: Tally, rooms: Iterable[ClosedRoom]) -> tuple[Tally, int]:
    """Count the rooms not counted before; returns the new tally and how many were new."""
    new: dict[str, ClosedRoom] = {}
    for r in rooms:
        if r.id not in tally.seen and r.id not in new:
            new[r.id] = r
    by_key: dict[str, list[ClosedRoom]] = {}
    for r in new.values():
        by_key.setdefault(key_of(r, tally.per_department), []).append(r)
    figures = dict(tally.figures)
    for k, group in by_key.items():
        figures[k] = add(figures.get(k) or tally.buckets.empty(), group)
    return _remember(replace(tally, figures=figures), new.values()), len(new)


def add(fig: Figures, rooms: list[ClosedRoom]) -> Figures:
    waits = [w for r in rooms if (w := r.queue_wait) is not None]
    responses = [r.first_response for r in rooms if r.first_response is not None]
    durations = [r.duration for r in rooms if r.duration is not None]
    return Figures(
        wait=fig.wait.observe(waits),
        first_response=fig.first_response.observe(responses),
        duration=fig.duration.observe(durations),
        closed=fig.closed + len(rooms),
        abandoned=fig.abandoned + sum(1 for r in rooms if r.abandoned),
    )


def _remember(tally: Tally, rooms: Iterable[ClosedRoom]) -> Tally:
    seen = dict(tally.seen)
    newest = tally.newest
    for r in rooms:
        seen[r.id] = r.closed_at
        newest = r.closed_at if newest is None else max(newest, r.closed_at)
    if newest is not None:
        # Older than the next query's start: can no longer come back, forget them.
        floor = newest - tally.overlap
        seen = {k: v for k, v in seen.items() if v >= floor}
    return replace(tally, seen=seen, newest=newest)


def rename(figures: Mapping[str, Figures], names: Mapping[str, str]) -> dict[str, Figures]:
    """Figures by label: department ids replaced by their names where known."""
    return {names.get(k, k): v for k, v in figures.items()}


@dataclass(frozen=True, slots=True)
class ServiceLevelSnapshot:
    """What /metrics shows: the figures by label (department name, id, "(none)", or ALL)."""

    known: bool  # the last rooms request succeeded
    figures: tuple[tuple[str, Figures], ...]
    per_department: bool
    target_ratio: float
    target_seconds: float


def snapshot_of(
    tally: Tally, known: bool, names: Mapping[str, str], target_ratio: float, target_seconds: float
) -> ServiceLevelSnapshot:
    figures = rename(tally.figures, names) if tally.per_department else dict(tally.figures)
    return ServiceLevelSnapshot(
        known, tuple(sorted(figures.items())), tally.per_department, target_ratio, target_seconds
    )
