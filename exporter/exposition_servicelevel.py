"""The service-level families of /metrics (only with `service_level` on).

Each entry of SERVICE_LEVEL_FAMILIES is (name, type, help, extractor); an extractor yields
(suffix, labels, value) triples from a snapshot, and exporter/exposition.py renders them as
`<name><suffix>{labels} value`. A histogram is `_bucket{le=...}` (cumulative, ending with
`+Inf`), `_sum` and `_count`, as the classic text format wants; with service_level off
(snapshot.service_level None) nothing is added to the page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from exporter.servicelevel import Figures, Histogram, ServiceLevelSnapshot
from exporter.snapshot import ServerSnapshot

Triple = tuple[str, dict[str, str], float]
Extract = Callable[[ServerSnapshot], Iterable[Triple]]


def _bound(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _rows(snap: ServerSnapshot) -> Iterator[tuple[dict[str, str], Figures]]:
    sl: ServiceLevelSnapshot | None = snap.service_level
    for label, figures in sl.figures if sl is not None else ():
        labels = {"server": snap.server}
        if sl is not None and sl.per_department:
            labels["department"] = label
        yield labels, figures


def _histogram(pick: Callable[[Figures], Histogram]) -> Extract:
    def extract(snap: ServerSnapshot) -> Iterator[Triple]:
        for labels, figures in _rows(snap):
            h = pick(figures)
            for bound, count in zip(h.bounds, h.buckets, strict=False):
                yield "_bucket", {**labels, "le": _bound(bound)}, count
            yield "_bucket", {**labels, "le": "+Inf"}, h.count
            yield "_sum", labels, h.sum
            yield "_count", labels, h.count

    return extract


def _counter(pick: Callable[[Figures], int]) -> Extract:
    def extract(snap: ServerSnapshot) -> Iterator[Triple]:
        for labels, figures in _rows(snap):
            yield "", labels, pick(figures)

    return extract


def _setting(pick: Callable[[ServiceLevelSnapshot], float]) -> Extract:
    def extract(snap: ServerSnapshot) -> Iterator[Triple]:
        if snap.service_level is not None:
            yield "", {"server": snap.server}, pick(snap.service_level)

    return extract


SERVICE_LEVEL_FAMILIES: tuple[tuple[str, str, str, Extract], ...] = (
    (
        "service_level_known",
        "gauge",
        "1 when the last livechat/rooms request succeeded, 0 when it failed (the counters then"
        " stand still and catch up at the next good request).",
        _setting(lambda sl: int(sl.known)),
    ),
    (
        "chat_queue_wait_seconds",
        "histogram",
        "Time closed chats waited in the queue before an agent took them (servedBy.ts - ts),"
        " counted when the chat closes; chats never taken are in chats_abandoned_total.",
        _histogram(lambda f: f.wait),
    ),
    (
        "chat_first_response_seconds",
        "histogram",
        "Closed chats' first response time (metrics.response.ft: the visitor's first message to"
        " the agent's first reply), counted when the chat closes.",
        _histogram(lambda f: f.first_response),
    ),
    (
        "chat_duration_seconds",
        "histogram",
        "Closed chats' duration (metrics.chatDuration), counted when the chat closes.",
        _histogram(lambda f: f.duration),
    ),
    (
        "chats_closed_total",
        "counter",
        "Chats closed since the exporter started.",
        _counter(lambda f: f.closed),
    ),
    (
        "chats_abandoned_total",
        "counter",
        "Chats closed before any agent took them (no servedBy): abandoned in the queue.",
        _counter(lambda f: f.abandoned),
    ),
    (
        "service_level_target_ratio",
        "gauge",
        "The configured service-level target (share of chats taken within the target time).",
        _setting(lambda sl: sl.target_ratio),
    ),
    (
        "service_level_target_seconds",
        "gauge",
        "The configured service-level target time (a wait_buckets bound).",
        _setting(lambda sl: sl.target_seconds),
    ),
)
