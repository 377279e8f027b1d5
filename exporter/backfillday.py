"""One server-local day of history as OpenMetrics samples with timestamps (for `backfill`).

Pure: a DayHistory and a grid of instants in, text out through a writer; no I/O of its own,
no clock. The numbers come from the live exporter's math, not a second implementation:

- agents available at t: `availability.Concurrency` over the day's merged intervals (bridged
  across Rocket.Chat's midnight split with `bridge_midnight_splits`, as the snapshot does for
  team figures), read at each grid instant. Its rule: an agent counts at t when some
  interval has start <= t < end (millisecond resolution).
- per agent, available 0/1 at t: the same, one agent at a time.
- required agents at t: `staffing.required_at`.
- per department (DayInput.departments, groups and schedules from exporter/departments.py):
  the same two computations over the department's members only.

Families (see docs/backfill.md): `agent_available{server,agent}` and `required_agents{server}`
mean what they mean live, so they keep the live names; `backfill_available_agents{server}`
and `backfill_understaffed{server}` have no live counterpart of the same meaning (the live
`agents{status="available"}` leaves away/busy agents out, while history counts them) and get
their own names. With departments, `department_required_agents{server,department}` keeps
its live name, and `backfill_department_available_agents` / `backfill_department_understaffed`
get their own, for the same reason.
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
DEPARTMENT_AVAILABLE = PREFIX + "backfill_department_available_agents"
DEPARTMENT_REQUIRED = PREFIX + "department_required_agents"
DEPARTMENT_UNDERSTAFFED = PREFIX + "backfill_department_understaffed"

# name -> HELP text, in the order the families are written.
FAMILIES: dict[str, str] = {
    AVAILABLE: "Agents available for service at the instant, from Rocket.Chat's history "
    "(closed sessions; away and busy agents count, as in the history). Written by backfill only.",
    REQUIRED: "Agents required at the instant by the configured staffing schedule.",
    UNDERSTAFFED: "1 if fewer agents were available at the instant (backfill_available_agents) "
    "than the staffing schedule required, else 0. Written by backfill only.",
    AGENT: "1 if the agent was available at the instant (a closed session from Rocket.Chat's "
    "history covers it), else 0.",
    DEPARTMENT_AVAILABLE: "The department's agents available for service at the instant, from "
    "Rocket.Chat's history (today's membership applied to past days). Written by backfill only.",
    DEPARTMENT_REQUIRED: "Agents the staffing schedule requires at the instant in the department "
    "(rules naming it).",
    DEPARTMENT_UNDERSTAFFED: "1 if fewer of the department's agents were available at the "
    "instant (backfill_department_available_agents) than its schedule required, else 0. "
    "Written by backfill only.",
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
class DepartmentSeries:
    """One department's series: its label (as the live `department` label), its members'
    usernames (today's membership), and its schedule (rules naming it; None: no schedule)."""

    label: str
    members: frozenset[str]
    staffing: Staffing | None = None


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
    departments: tuple[DepartmentSeries, ...] = ()  # (): departments off or unknown


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
    if inp.departments:
        _departments(inp, agents, stamps, server, family, counter)
    return offsets


def _departments(
    inp: DayInput,
    agents: Mapping[str, Sequence[Interval]],
    stamps: Sequence[str],
    server: str,
    family: Callable[[str, Callable[[], None]], None],
    counter: _Counter,
) -> None:
    """The department families: for each department, the server-wide computation over its
    members only (the same Concurrency and `required_at`), in label order as live."""
    grid = inp.grid
    deps = sorted(inp.departments, key=lambda d: d.label)
    available = {
        d.label: levels(
            sampled_runs(
                _timeline([agents[m] for m in sorted(d.members) if m in agents], grid), grid
            ),
            grid.count,
        )
        for d in deps
    }
    required = {
        d.label: [required_at(d.staffing, float(t)) for t in grid.instants()]
        for d in deps
        if d.staffing is not None
    }
    short = {
        label: [int(a < r) for a, r in zip(available[label], need, strict=True)]
        for label, need in required.items()
    }

    def rows(name: str, values: Mapping[str, Sequence[int]]) -> Callable[[], None]:
        def body() -> None:
            for label, series in values.items():
                head = f'{name}{{{server},department="{escape_label(label)}"}} '
                counter(
                    "".join(f"{head}{v}{s}" for v, s in zip(series, stamps, strict=True)).encode(
                        "utf-8", "replace"
                    )
                )

        return body

    family(DEPARTMENT_AVAILABLE, rows(DEPARTMENT_AVAILABLE, available))
    if required:
        family(DEPARTMENT_REQUIRED, rows(DEPARTMENT_REQUIRED, required))
        family(DEPARTMENT_UNDERSTAFFED, rows(DEPARTMENT_UNDERSTAFFED, short))


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
