"""The simulated Rocket.Chat in a process of its own, on a clock shared with the exporter.

This module imports nothing of `exporter` at the top: the simulator child always runs the
current simulator, also when the worker measures the baseline's exporter code (whose
directory is then taken off the child's path, see `SimulatorProcess`).
"""

from __future__ import annotations

import multiprocessing
import sys
from collections import Counter
from typing import Any

from . import sizes

SPAWN = multiprocessing.get_context("spawn")
# Set by the worker when it measures a baseline: that directory is not the simulator's.
BASELINE_PATH: list[str] = []


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

    def set(self, value: float) -> None:
        with self._value.get_lock():
            self._value.value = max(self._value.value, value)  # never backwards


def _simulator_main(conn: Any, clock_value: Any, agents: int, infinite: bool) -> None:
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
            allow_infinite_count=infinite,
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
    memory is counted as the exporter's. `infinite`: Rocket.Chat's API_Allow_Infinite_Count
    (on by default; off, count=0 is answered with a capped page)."""

    def __init__(self, clock: SharedClock, agents: int, infinite: bool = True):
        self.infinite = infinite
        self._conn, child = SPAWN.Pipe()
        self._proc = SPAWN.Process(
            target=_simulator_main,
            args=(child, clock.raw, agents, infinite),
            name="simulator",
            daemon=True,
        )
        # spawn hands the child this process's sys.path: without the baseline's directory,
        # the child imports the current simulator (and, through this package, main's code).
        saved = sys.path[:]
        sys.path[:] = [p for p in sys.path if p not in BASELINE_PATH]
        try:
            self._proc.start()
        finally:
            sys.path[:] = saved
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
