"""One server-local day of history as OpenMetrics samples with timestamps (for `backfill`).

Pure: a DayHistory and a grid of instants in, text out through a writer; no I/O of its own,
no clock. The numbers come from the live exporter's math, not a second implementation:

- agents available at t: `availability.Concurrency` over the day's merged intervals (bridged
  across Rocket.Chat's midnight split with `bridge_midnight_splits`, as the snapshot does for
  team figures), read at each grid instant. Its rule: an agent counts at t when some
  interval has start <= t < end (millisecond resolution).
- per agent, available 0/1 at t: the same, one agent at a time.
- required agents at t: `staffing.required_at`.

Families (see docs/backfill.md): `agent_available{server,agent}` and `required_agents{server}`
mean what they mean live, so they keep the live names; `backfill_available_agents{server}`
and `backfill_understaffed{server}` have no live counterpart of the same meaning (the live
`agents{status="available"}` leaves away/busy agents out, while history counts them) and get
their own names.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from exporter.availability import Concurrency, bridge_midnight_splits
from exporter.config.model import AgentFilter, Staffing
from exporter.exposition import PREFIX, escape_label
from exporter.model import DayHistory, Interval
from exporter.staffing import required_at

AVAILABLE = PREFIX + "backfill_available_agents"
REQUIRED = PREFIX + "required_agents"
UNDERSTAFFED = PREFIX + "backfill_understaffed"
AGENT = PREFIX + "agent_available"

# name -> HELP text, in the order the families are written.
FAMILIES: dict[str, str] = {
    AVAILABLE: "Agents available for service at the instant, from Rocket.Chat's history "
    "(closed sessions; away and busy agents count, as in the history). Written by backfill only.",
    REQUIRED: "Agents required at the instant by the configured staffing schedule.",
    UNDERSTAFFED: "1 if fewer agents were available at the instant (backfill_available_agents) "
    "than the staffing schedule required, else 0. Written by backfill only.",
    AGENT: "1 if the agent was available at the instant (a closed session from Rocket.Chat's "
    "history covers it), else 0.",
}

Run = tuple[int, int, int]  # grid indices [lo, hi) all sampling the same value


@dataclass(frozen=True, slots=True)
class Grid:
    """Instants first + i * step for i in range(count): whole seconds, epoch-aligned."""

    first: int
    step: int
    count: int

    @classmethod
    def between(cls, start: float, end: float, step: int) -> Grid:
        """The multiples of `step` seconds in [start, end)."""
        first = math.ceil(start / step) * step
        count = math.ceil((end - first) / step) if end > first else 0
        return cls(first, step, count)

    def instants(self) -> range:
        return range(self.first, self.first + self.count * self.step, self.step)


@dataclass(frozen=True, slots=True)
class DayInput:
    server: str
    tz: ZoneInfo
    history: DayHistory
    grid: Grid
    staffing: Staffing | None
    agent_filter: AgentFilter
    names: Mapping[str, str]  # display names, for agents.label: name
    target_labels: tuple[tuple[str, str], ...] = ()  # e.g. job, instance (--label)


def sampled_runs(timeline: Concurrency, grid: Grid) -> list[Run]:
    """Runs of grid indices over which the timeline's level is constant.

    Segment k of the timeline holds level[k] on [times[k], times[k + 1]) (times in quarter
    milliseconds); the grid instants inside it are a contiguous range of indices.
    """
    times, level = timeline.times, timeline.level
    first_ms, step_ms, n = grid.first * 1000, grid.step * 1000, grid.count

    def index(unit: float) -> int:  # the first grid index at or after this instant
        ms = int(unit) // 4
        return min(n, max(0, -((first_ms - ms) // step_ms)))

    runs: list[Run] = []
    lo = index(times[0]) if len(times) else n
    if lo > 0:
        runs.append((0, lo, 0))
    for k in range(len(times)):
        hi = index(times[k + 1]) if k + 1 < len(times) else n
        if hi > lo:
            runs.append((lo, hi, int(level[k])))
        lo = max(lo, hi)
    return runs


def levels(runs: Iterable[Run], count: int) -> list[int]:
    out = [0] * count
    for lo, hi, value in runs:
        out[lo:hi] = [value] * (hi - lo)
    return out


def _timeline(agents: Iterable[Sequence[Interval]], grid: Grid) -> Concurrency:
    start = float(grid.first)
    end = float(grid.first + max(grid.count, 1) * grid.step)
    return Concurrency(agents, start, end)


def write_day(
    inp: DayInput, write: Callable[[bytes], object], *, headers: bool = True
) -> dict[str, tuple[int, int]]:
    """Write the day's samples family by family (each after its HELP/TYPE lines when
    `headers`); returns each family's (start, end) byte offsets among the bytes written, so
    that days can later be joined family by family into one document."""
    counter = _Counter(write)
    grid = inp.grid
    stamps = [f" {t}\n" for t in grid.instants()]
    wants = inp.agent_filter.wants
    agents = {
        name: bridge_midnight_splits(day.intervals, inp.tz)
        for name, day in inp.history.agents.items()
        if wants(name)
    }
    base = "".join(f'{k}="{escape_label(v)}",' for k, v in inp.target_labels)
    server = f'{base}server="{escape_label(inp.server)}"'
    available = levels(sampled_runs(_timeline(agents.values(), grid), grid), grid.count)
    offsets: dict[str, tuple[int, int]] = {}

    def family(name: str, body: Callable[[], None]) -> None:
        if headers:
            counter(header(name))
        start = counter.n
        body()
        offsets[name] = (start, counter.n)

    def team(name: str, values: Sequence[int]) -> Callable[[], None]:
        def body() -> None:
            head = f"{name}{{{server}}} "
            counter("".join(f"{head}{v}{s}" for v, s in zip(values, stamps, strict=True)).encode())

        return body

    family(AVAILABLE, team(AVAILABLE, available))
    if inp.staffing is not None:
        staffing = inp.staffing
        required = [required_at(staffing, float(t)) for t in grid.instants()]
        family(REQUIRED, team(REQUIRED, required))
        short = [int(a < r) for a, r in zip(available, required, strict=True)]
        family(UNDERSTAFFED, team(UNDERSTAFFED, short))
    if inp.agent_filter.per_agent and agents:
        family(AGENT, lambda: _agents(inp, agents, stamps, server, counter))
    return offsets


def _agents(
    inp: DayInput,
    agents: Mapping[str, Sequence[Interval]],
    stamps: Sequence[str],
    server: str,
    counter: _Counter,
) -> None:
    """agent_available, one agent (all its instants) at a time: the day's biggest part, never
    held in memory whole."""
    labels = inp.agent_filter.labels(agents.keys(), inp.names)
    for name in sorted(agents, key=labels.__getitem__):
        runs = sampled_runs(_timeline([agents[name]], inp.grid), inp.grid)
        head = f'{AGENT}{{{server},agent="{escape_label(labels[name])}"}} '
        heads = (head + "0", head + "1")
        counter(
            "".join(
                "".join(map(heads[min(v, 1)].__add__, stamps[lo:hi])) for lo, hi, v in runs
            ).encode("utf-8", "replace")
        )


class _Counter:
    """Passes bytes on and counts them, so each family's byte range is known."""

    def __init__(self, write: Callable[[bytes], object]):
        self._write = write
        self.n = 0

    def __call__(self, data: bytes) -> None:
        self._write(data)
        self.n += len(data)


def header(name: str) -> bytes:
    return f"# HELP {name} {FAMILIES[name]}\n# TYPE {name} gauge\n".encode()


EOF = b"# EOF\n"
