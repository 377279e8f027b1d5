"""The pieces a size run is made of: the exporter's real poller and publisher on the shared
clock (simproc.py), with stopwatches around its stages. Works on main's code and on the
baseline's (compat.py)."""

from __future__ import annotations

import functools
import gc
import json
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from exporter.availability import window_bounds
from exporter.config import parse_config
from exporter.config.model import Config

from . import compat, sizes
from .simproc import SPAWN, SharedClock, SimulatorProcess

__all__ = ["SPAWN", "SharedClock", "SimulatorProcess", "Exporter", "Stages", "pages"]


# ---- stopwatches around the exporter's stages ---------------------------------------------------


@dataclass
class Stages:
    """Thread CPU seconds spent in each stage of one poll (the poller's own thread)."""

    json: float = 0.0  # json.loads of every response body (what httpx's Response.json does)
    json_bytes: int = 0
    parse: float = 0.0  # answers -> model values (history_parser), merging included
    compute: float = 0.0  # build_snapshot: windows, team sweep, open sessions
    render: float = 0.0  # Publisher.update: exposition text + its gzip copy
    total: float = 0.0  # the whole poll: the above plus HTTP and bookkeeping
    gc: float = 0.0  # of total: cyclic garbage collections the poll triggered (in any stage)
    gc_full: int = 0  # of those, full (generation 2) collections

    @property
    def decode(self) -> float:
        return self.json + self.parse

    @property
    def work(self) -> float:
        """decode + compute + render: the issue's "poll CPU"."""
        return self.decode + self.compute + self.render

    def as_dict(self) -> dict[str, float]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d.update(decode=self.decode, work=self.work, http_other=self.total - self.work)
        return d


class _Meter:
    """Which Stages the wrappers add to (swapped per poll)."""

    stages = Stages()
    thread: int | None = None  # the poller's thread (garbage collections are counted there)
    gc_started = 0.0


def _gc_callback(phase: str, info: dict[str, Any]) -> None:
    if threading.get_ident() != _Meter.thread:
        return
    if phase == "start":
        _Meter.gc_started = time.thread_time()
        return
    s = _Meter.stages
    s.gc += time.thread_time() - _Meter.gc_started
    s.gc_full += info["generation"] == 2


def _timed(field: str, fn: Callable) -> Callable:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            s = _Meter.stages
            setattr(s, field, getattr(s, field) + time.thread_time() - t)

    return wrapper


def _timed_json(body: bytes) -> Any:
    t = time.thread_time()
    value = json.loads(body)  # exactly what the transport does, timed on its own
    s = _Meter.stages
    s.json += time.thread_time() - t
    s.json_bytes += len(body)
    return value


def _timed_response_json(self: Any, **kwargs: Any) -> Any:
    """The baseline decoded with httpx's Response.json: the same json.loads, timed."""
    body = self.content
    t = time.thread_time()
    value = json.loads(body, **kwargs)
    s = _Meter.stages
    s.json += time.thread_time() - t
    s.json_bytes += len(body)
    return value


_PARSERS = (
    "parse_history_page",
    "assemble_day",
    "parse_agents_page",
    "unique_agents",
    "live_counts",
    "parse_agents_status",
)
_installed = False


def install_stopwatches() -> None:
    """Wrap the stage functions where the client and the poller look them up. The exporter's
    code paths are unchanged; each wrapper adds two clock reads."""
    global _installed
    if _installed:
        return
    _installed = True
    if compat.transport_module is not None:
        compat.transport_module.decode_json = _timed_json
    else:
        import httpx

        httpx.Response.json = _timed_response_json  # type: ignore[method-assign]
    gc.callbacks.append(_gc_callback)
    client = compat.client_module
    for name in _PARSERS:
        if hasattr(client, name):
            setattr(client, name, _timed("parse", getattr(client, name)))
    import exporter.poller

    exporter.poller.build_snapshot = _timed("compute", exporter.poller.build_snapshot)


# ---- the exporter -------------------------------------------------------------------------------


class _StretchLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "poll_interval too short" in record.getMessage():
            self.count += 1


@dataclass
class Poll:
    ok: bool
    stages: Stages
    requests: Counter[tuple[str, Any]]  # the simulator's count for this poll
    wall: float  # real seconds
    started: float  # the shared clock when the poll started
    fake: float  # seconds of the shared clock the poll took (rate-limit waits)
    interval: float  # the effective poll interval the exporter published after it


def timed_publisher(names: list[str], max_staleness: float) -> Any:
    """The exporter's Publisher, its `update` (render and swap) timed as the render stage."""
    publisher = compat.Publisher(names, max_staleness)
    publisher.update = _timed("render", publisher.update)
    return publisher


class Exporter:
    """The real ServerPoller and Publisher, configured like a user would, on the shared clock.

    `publisher` and `name`: one of several servers sharing a publisher (one process)."""

    def __init__(
        self,
        sim: SimulatorProcess,
        clock: SharedClock,
        per_agent: bool,
        name: str = sizes.SERVER,
        publisher: Any = None,
    ):
        self.sim = sim
        self.clock = clock
        self.name = name
        self.config: Config = parse_config(
            {
                "poll_interval": f"{sizes.POLL_INTERVAL:g}s",
                "windows": list(sizes.WINDOWS),
                "agents": {"per_agent": per_agent},
                "servers": [
                    {
                        "name": name,
                        "url": sim.url,
                        "user_id": sim.user_id,
                        "auth_token": sim.auth_token,
                        "timezone": sizes.TIMEZONE,
                    }
                ],
            }
        )
        self.publisher = publisher or timed_publisher([name], self.config.max_staleness)
        self.stretch_log = _StretchLog()
        logging.getLogger("exporter.poller").addHandler(self.stretch_log)
        self.poller = compat.ServerPoller(
            self.config.servers[0],
            self.config,
            self.publisher,
            stop=threading.Event(),
            clock=clock.now,
            client_factory=functools.partial(compat.RocketChatClient, sleep=clock.advance),
        )

    @property
    def past_builds(self) -> int:
        return self.poller.past.builds

    def poll(self, advance: bool = True) -> Poll:
        """One poll as ServerPoller.run makes it, then (`advance`) the wait until the next."""
        before = self.sim.requests()
        started_fake = self.clock.now()
        stages = _Meter.stages = Stages()
        _Meter.thread = threading.get_ident()
        wall = time.perf_counter()
        cpu = time.thread_time()
        ok = self.poller.run_poll()
        stages.total = time.thread_time() - cpu
        # a collection after this point (the bookkeeping below) is not the poll's: counted
        # into `stages` it made GC time exceed the poll's own time (gc_share 1.16 at S once)
        _Meter.stages = Stages()
        wall = time.perf_counter() - wall
        fake = self.clock.now() - started_fake
        views = self.publisher.views(self.clock.now())
        interval = next(v for v in views if v.health.server == self.name).health.poll_interval
        requests = self.sim.requests()
        requests.subtract(before)
        if advance:
            self.clock.advance(max(0.0, interval - fake))
        return Poll(ok, stages, +requests, wall, started_fake, fake, interval)

    def page(self, gzipped: bool = False) -> bytes:
        return self.publisher.page(self.clock.now(), gzipped=gzipped)

    def close(self) -> None:
        logging.getLogger("exporter.poller").removeHandler(self.stretch_log)
        self.poller.close()


# ---- Rocket.Chat's side: what a design costs ---------------------------------------------------


def pages(agents_with_data: int) -> int:
    """Requests for one list in pages of 100, Rocket.Chat's API_Upper_Count_Limit (an empty
    list still takes one): what a client pays where count=0 is not allowed."""
    return max(1, math.ceil(agents_with_data / compat.PAGE_SIZE))


def window_days(config: Config, now: float) -> dict[str, list[int]]:
    """The server-local days (ordinals) each window touches at `now`."""
    tz = ZoneInfo(config.servers[0].timezone)
    out = {}
    for w in config.windows:
        start, end = window_bounds(w, now, tz)
        first, last = compat.local_date(start, tz), compat.local_date(end, tz)
        if compat.local_date(end - 1e-3, tz) < last:  # ends exactly at a midnight: not that day
            last -= timedelta(days=1)
        out[w.name] = [d.toordinal() for d in _days(first, last)]
    return out


def _days(first: Any, last: Any) -> list[Any]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]
