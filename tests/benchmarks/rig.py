"""The pieces a size run is made of: a fake clock shared between processes, the simulator in
its own process, and the exporter's real poller with stopwatches around its stages."""

from __future__ import annotations

import functools
import gc
import json
import logging
import math
import multiprocessing
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import exporter.poller
import exporter.rocketchat.client
import exporter.rocketchat.transport
from exporter.availability import window_bounds
from exporter.config import parse_config
from exporter.config.model import Config
from exporter.localtime import local_date
from exporter.poller import ServerPoller
from exporter.publisher import Publisher
from exporter.rocketchat.client import RocketChatClient
from exporter.rocketchat.paging import PAGE_SIZE

from . import sizes

SPAWN = multiprocessing.get_context("spawn")


class SharedClock:
    """Unix seconds in shared memory: the simulator and the exporter read the same "now".

    The client's `sleep` is `advance`, so rate-limit waits cost no wall time while Rocket.Chat's
    fixed windows (kept by the simulator on this clock) are enforced exactly.
    """

    def __init__(self, value: Any):
        self._value = value  # a multiprocessing Value("d")

    @classmethod
    def create(cls, start: float) -> SharedClock:
        return cls(SPAWN.Value("d", start))

    @property
    def raw(self) -> Any:
        return self._value

    def now(self) -> float:
        with self._value.get_lock():
            return self._value.value

    def advance(self, seconds: float) -> float:
        with self._value.get_lock():
            self._value.value += seconds
            return self._value.value


# ---- the simulator, in a process of its own ---------------------------------------------------


def _simulator_main(conn: Any, clock_value: Any, agents: int) -> None:
    from exporter.simulator import Simulator, SimulatorConfig, serve

    clock = SharedClock(clock_value)
    sim = Simulator(
        SimulatorConfig(
            agents=agents,
            seed=sizes.SEED,
            timezone=sizes.TIMEZONE,
            days=sizes.HISTORY_DAYS,
            intervals_per_day=sizes.INTERVALS_PER_DAY,
            rate_limit=sizes.RATE_LIMIT,
            rate_window=sizes.RATE_WINDOW,
        ),
        clock=clock,
    )
    sim.warm()
    server = serve(sim, host="127.0.0.1", port=0)
    conn.send((server.url, sim.config.user_id, sim.config.auth_token))
    try:
        while True:
            cmd, arg = conn.recv()
            if cmd == "requests":
                conn.send(sorted(sim.requests.items(), key=str))
            elif cmd == "day_totals":  # agents with history per local day (ordinals) at a time
                days, at = arg
                now_ms = round(at * 1000)
                conn.send({d: sim.history_rows(d, d, now_ms, 0, 1)[0] for d in days})
            elif cmd == "stop":
                break
    finally:
        server.stop()
        conn.send("stopped")


class SimulatorProcess:
    """The simulator serving on 127.0.0.1 from a subprocess, so that neither its CPU nor its
    memory is counted as the exporter's."""

    def __init__(self, clock: SharedClock, agents: int):
        self._conn, child = SPAWN.Pipe()
        self._proc = SPAWN.Process(
            target=_simulator_main, args=(child, clock.raw, agents), name="simulator", daemon=True
        )
        self._proc.start()
        self.url, self.user_id, self.auth_token = self._conn.recv()

    def requests(self) -> Counter[tuple[str, Any]]:
        """The simulator's own count of answers, by (route, status)."""
        self._conn.send(("requests", None))
        return Counter(dict(self._conn.recv()))

    def day_totals(self, ordinals: list[int], at: float) -> dict[int, int]:
        """Agents with history on each local day (ordinals), as the simulator had it `at`."""
        self._conn.send(("day_totals", (ordinals, at)))
        return self._conn.recv()

    def stop(self) -> None:
        if self._proc.is_alive():
            self._conn.send(("stop", None))
            self._conn.recv()
            self._proc.join(timeout=10)


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
    exporter.rocketchat.transport.decode_json = _timed_json
    gc.callbacks.append(_gc_callback)
    for name in _PARSERS:
        setattr(
            exporter.rocketchat.client,
            name,
            _timed("parse", getattr(exporter.rocketchat.client, name)),
        )
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


class Exporter:
    """The real ServerPoller and Publisher, configured like a user would, on the shared clock."""

    def __init__(self, sim: SimulatorProcess, clock: SharedClock, per_agent: bool):
        self.sim = sim
        self.clock = clock
        self.config: Config = parse_config(
            {
                "poll_interval": f"{sizes.POLL_INTERVAL:g}s",
                "windows": list(sizes.WINDOWS),
                "agents": {"per_agent": per_agent},
                "servers": [
                    {
                        "name": sizes.SERVER,
                        "url": sim.url,
                        "user_id": sim.user_id,
                        "auth_token": sim.auth_token,
                        "timezone": sizes.TIMEZONE,
                    }
                ],
            }
        )
        self.publisher = Publisher([sizes.SERVER], self.config.max_staleness)
        self.publisher.update = _timed("render", self.publisher.update)  # type: ignore[method-assign]
        self.stretch_log = _StretchLog()
        logging.getLogger("exporter.poller").addHandler(self.stretch_log)
        self.poller = ServerPoller(
            self.config.servers[0],
            self.config,
            self.publisher,
            stop=threading.Event(),
            clock=clock.now,
            client_factory=functools.partial(RocketChatClient, sleep=clock.advance),
        )

    def poll(self) -> Poll:
        """One poll as ServerPoller.run makes it, then the wait until the next one."""
        before = self.sim.requests()
        started_fake = self.clock.now()
        stages = _Meter.stages = Stages()
        _Meter.thread = threading.get_ident()
        wall = time.perf_counter()
        cpu = time.thread_time()
        ok = self.poller.run_poll()
        stages.total = time.thread_time() - cpu
        wall = time.perf_counter() - wall
        fake = self.clock.now() - started_fake
        interval = self.publisher.views(self.clock.now())[0].health.poll_interval
        requests = self.sim.requests()
        requests.subtract(before)
        self.clock.advance(max(0.0, interval - fake))
        return Poll(ok, stages, +requests, wall, started_fake, fake, interval)

    def page(self) -> bytes:
        return self.publisher.page(self.clock.now())

    def close(self) -> None:
        logging.getLogger("exporter.poller").removeHandler(self.stretch_log)
        self.poller.close()


# ---- Rocket.Chat's side: what a design costs ---------------------------------------------------


def pages(agents_with_data: int) -> int:
    """Requests for one list at PAGE_SIZE per page (an empty list still takes one)."""
    return max(1, math.ceil(agents_with_data / PAGE_SIZE))


def window_days(config: Config, now: float) -> dict[str, list[int]]:
    """The server-local days (ordinals) each window touches at `now`."""
    tz = ZoneInfo(config.servers[0].timezone)
    out = {}
    for w in config.windows:
        start, end = window_bounds(w, now, tz)
        first, last = local_date(start, tz), local_date(end, tz)
        if local_date(end - 1e-3, tz) < last:  # ends exactly at a midnight: not that day
            last -= timedelta(days=1)
        out[w.name] = [d.toordinal() for d in _days(first, last)]
    return out


def _days(first: Any, last: Any) -> list[Any]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]
