"""Per-department figures: the team math over each department's agents, the queue, the load.

Pure (no I/O, no clock): called once per poll from `build_snapshot` with the same history,
live status and window bounds as the team figures, so a department's numbers are the team's
numbers restricted to its members, computed by the same functions (`team_windows`,
`required_at`, `live counts`). An agent in several departments counts in each; agents in no
department are grouped under NO_DEPARTMENT, never dropped.

Membership comes from livechat/users/agent (`departments`, newer servers). Where the answer
does not list them (older servers, or the chart fallback when the per-agent route is
refused), per-department agent figures are unknown and only the queue and load are exported.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from zoneinfo import ZoneInfo

from exporter.availability import TeamWindow, bridge_midnight_splits, team_windows
from exporter.config.model import AgentFilter, Departments, Staffing, Window
from exporter.departments_past import DepartmentPast
from exporter.localtime import day_start, local_date
from exporter.model import (
    LIVE_STATUSES,
    AgentLive,
    DayHistory,
    Department,
    Interval,
    LiveStatus,
    Omnichannel,
)
from exporter.sessions import Streak, open_session, with_open_sessions
from exporter.staffing import required_at, requirement_segments

NO_DEPARTMENT = "(none)"  # the `department` label of agents and chats in no department
PARTS = ("departments", "membership", "queue", "load")  # the `part` label of *_known


@dataclass(frozen=True, slots=True)
class DepartmentInputs:
    """What a poll adds for departments (None in SnapshotInputs when they are off)."""

    config: Departments
    data: Omnichannel
    staffing: tuple[tuple[str, Staffing], ...] = ()  # per department name or id
    # The past days' part kept between polls (the poller owns it); None: from scratch.
    past: DepartmentPast | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class DepartmentRow:
    department: str  # label: the department's name (its id when it has none)
    status_counts: tuple[tuple[str, int], ...] | None  # None: membership unknown
    team: tuple[tuple[str, TeamWindow], ...]  # (window name, stats); () when unknown
    required_agents: int | None  # None: no schedule names this department
    queued: int | None  # None: queue unknown
    oldest_queued: float | None  # unix time the oldest queued chat was created; None: none
    open_chats: int | None  # None: load unknown
    chat_slots: int | None  # None: membership unknown


@dataclass(frozen=True, slots=True)
class DepartmentsSnapshot:
    rows: tuple[DepartmentRow, ...]  # sorted by label
    known: tuple[tuple[str, bool], ...]  # (part, readable this poll), parts in PARTS order
    queued: int | None  # the whole queue (Rocket.Chat's total)
    oldest_queued: float | None
    agent_open_chats: tuple[tuple[str, int], ...]  # (agent label, chats), per_agent only
    queue_wait_warning: float


class DepartmentSource(Protocol):
    """What the department figures read from the snapshot's inputs (SnapshotInputs has it)."""

    @property
    def departments(self) -> DepartmentInputs | None: ...
    @property
    def tz(self) -> ZoneInfo: ...
    @property
    def days(self) -> Sequence[DayHistory]: ...
    @property
    def live(self) -> LiveStatus: ...
    @property
    def streaks(self) -> Mapping[str, Streak]: ...
    @property
    def windows(self) -> Sequence[Window]: ...
    @property
    def agent_filter(self) -> AgentFilter: ...
    @property
    def include_open_sessions(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class _Context:
    tz: ZoneInfo
    days: Sequence[DayHistory]
    live_agents: tuple[AgentLive, ...] | None
    streaks: Mapping[str, Streak]
    windows: Sequence[str]  # window names, in bounds order
    bounds: Sequence[tuple[float, float]]
    agent_filter: AgentFilter
    include_open_sessions: bool


def department_figures(
    src: DepartmentSource, bounds: Sequence[tuple[float, float]], now: float
) -> DepartmentsSnapshot | None:
    """The snapshot's department part (None when departments are off): the one call
    `build_snapshot` makes, with its windows (already without incomplete ones) and bounds."""
    if src.departments is None:
        return None
    ctx = _Context(
        tz=src.tz,
        days=src.days,
        live_agents=src.live.agents,
        streaks=src.streaks,
        windows=[w.name for w in src.windows],
        bounds=bounds,
        agent_filter=src.agent_filter,
        include_open_sessions=src.include_open_sessions,
    )
    return build_departments(src.departments, ctx, now)


def selected(
    departments: Sequence[Department], select: str | tuple[str, ...]
) -> tuple[list[Department], list[str]]:
    """The departments `select` names (by name or id) and the names that match none."""
    if select == "all":
        return list(departments), []
    if select == "none":
        return [], []
    chosen: dict[str, Department] = {}
    missing = []
    for wanted in select:
        hits = [d for d in departments if wanted in (d.id, d.name)]
        if not hits:
            missing.append(wanted)
        for d in hits:
            chosen.setdefault(d.id, d)
    return list(chosen.values()), missing


def build_departments(inp: DepartmentInputs, ctx: _Context, now: float) -> DepartmentsSnapshot:
    """The DepartmentsSnapshot at `now`."""
    data, cfg = inp.data, inp.config
    wants = ctx.agent_filter.wants
    deps = data.departments or ()
    chosen, _ = selected(deps, cfg.select)
    live = [a for a in ctx.live_agents or () if wants(a.username)]
    membership = ctx.live_agents is not None and any(a.departments is not None for a in live)
    team_of = _team_figures(inp.past, ctx, {a.username for a in live}, now) if membership else None
    staffing = dict(inp.staffing)
    queue_by = _queue_by_department(data)
    load_by = _load_by_department(data)
    unassigned_chats = None in queue_by or None in load_by
    groups = department_groups(chosen, cfg.select, live if membership else (), unassigned_chats)
    if cfg.select == "all":  # chats of departments deleted since the last refresh
        known_ids = {d.id for d in deps}
        for dep_id in sorted(k for k in queue_by.keys() | load_by.keys() if k is not None):
            if dep_id not in known_ids:
                groups.append((dep_id, Department(dep_id, dep_id), []))
    rows = []
    for label, dep, agents in groups:
        schedule = department_schedule(staffing, dep)
        key = dep.id if dep is not None else None
        row = _row(label, dep, agents, team_of, schedule, cfg, now, ctx.windows)
        rows.append(_with_queue(row, queue_by, load_by, key, data))
    known = (
        ("departments", data.departments is not None),
        ("membership", membership),
        ("queue", data.queue is not None),
        ("load", data.load is not None),
    )
    oldest = min((q.ts for q in data.queue or ()), default=None)
    return DepartmentsSnapshot(
        rows=tuple(sorted(_dedupe(rows), key=lambda r: r.department)),
        known=known,
        queued=data.queue_total if data.queue is not None else None,
        oldest_queued=oldest,
        agent_open_chats=_agent_chats(ctx, data),
        queue_wait_warning=cfg.queue_wait_warning,
    )


Group = tuple[str, "Department | None", list[AgentLive]]  # label, department (None: none), members


def department_groups(
    chosen: Sequence[Department],
    select: str | tuple[str, ...],
    agents: Sequence[AgentLive],
    no_department: bool = False,
) -> list[Group]:
    """The rows' labels and members in build order (also used by `backfill`): each chosen
    department, labelled by its name (by its id when an earlier one has the same name), then
    NO_DEPARTMENT for the agents in none (with `all`, when an agent is in none, or when
    `no_department`); one group per label. `agents`: those with known membership (empty
    when unknown)."""
    members: dict[str, list[AgentLive]] = {d.id: [] for d in chosen}
    unassigned: list[AgentLive] = []
    for agent in agents:
        ids = agent.departments or ()
        if not ids:
            unassigned.append(agent)
        for dep_id in ids:
            if dep_id in members:
                members[dep_id].append(agent)
    groups: dict[str, Group] = {}  # by label: the first wins (as `_dedupe` for the rows)
    labels: set[str] = set()
    for d in chosen:
        label = d.name if d.name not in labels else d.id  # two departments, one name
        labels.add(label)
        groups.setdefault(label, (label, d, members[d.id]))
    if select == "all" or unassigned or no_department:
        groups.setdefault(NO_DEPARTMENT, (NO_DEPARTMENT, None, unassigned))
    return list(groups.values())


def department_schedule(
    staffing: Mapping[str, Staffing], dep: Department | None
) -> Staffing | None:
    """The schedule of rules naming the department (by id or name; NO_DEPARTMENT for none)."""
    if dep is None:
        return staffing.get(NO_DEPARTMENT)
    return staffing.get(dep.id) or staffing.get(dep.name)


def _dedupe(rows: list[DepartmentRow]) -> list[DepartmentRow]:
    """One row per label (a deleted department's id could equal a name): the first wins."""
    seen: set[str] = set()
    out = []
    for row in rows:
        if row.department in seen:
            continue
        seen.add(row.department)
        out.append(row)
    return out


def _merged(ctx: _Context, usernames: set[str], now: float) -> dict[str, tuple[Interval, ...]]:
    """Each agent's closed intervals over the cached days plus its open session, as the team
    figures see them (midnight splits bridged)."""
    closed: dict[str, list[Interval]] = {}
    for day in ctx.days:
        for name, agent_day in day.agents.items():
            if name in usernames:
                closed.setdefault(name, []).extend(agent_day.intervals)
    out = {}
    midnight = day_start(local_date(now, ctx.tz), ctx.tz)
    for name in usernames:
        ivs = closed.get(name, [])
        opened = None
        streak = ctx.streaks.get(name)
        if ctx.include_open_sessions and streak is not None:
            opened = open_session(streak, ivs[-1].end if ivs else None, midnight, now)
        merged = with_open_sessions(ivs, opened)
        if merged:
            out[name] = bridge_midnight_splits(merged, ctx.tz)
    return out


TeamOf = Callable[[list[str], "Staffing | None"], list[TeamWindow]]


def _team_figures(
    past: DepartmentPast | None, ctx: _Context, names: set[str], now: float
) -> TeamOf:
    """How a department's team figures are computed this poll: from the kept past part and
    this poll's recent part where that applies, else from all days at once (once per poll)."""
    recent = None
    if past is not None:
        recent = past.recent(
            ctx.days, ctx.tz, ctx.agent_filter, ctx.streaks, ctx.include_open_sessions, names, now
        )
    whole: dict[str, tuple[Interval, ...]] | None = None

    def team_of(members: list[str], schedule: Staffing | None) -> list[TeamWindow]:
        nonlocal whole
        if recent is not None and past is not None:
            split = past.team(recent, members, schedule, ctx.tz, ctx.bounds)
            if split is not None:
                return split
        if whole is None:
            whole = _merged(ctx, names, now)
        requirement = None
        if schedule is not None and ctx.bounds:
            start = min(b[0] for b in ctx.bounds)
            requirement = requirement_segments(schedule, start, max(b[1] for b in ctx.bounds))
        return team_windows([whole[m] for m in members if m in whole], ctx.bounds, requirement)

    return team_of


def _row(
    label: str,
    dep: Department | None,
    agents: list[AgentLive],
    team_of: TeamOf | None,
    schedule: Staffing | None,
    cfg: Departments,
    now: float,
    windows: Sequence[str],
) -> DepartmentRow:
    if team_of is None:  # membership unknown
        return DepartmentRow(label, None, (), _required(schedule, now), None, None, None, None)
    counts = dict.fromkeys(LIVE_STATUSES, 0)
    slots = 0
    for agent in agents:
        counts[agent.chart_status] = counts.get(agent.chart_status, 0) + 1
        if agent.available:
            limit = agent.max_chats or (dep.max_chats if dep is not None else None)
            slots += limit or cfg.chats_per_agent
    team = team_of([a.username for a in agents], schedule)
    return DepartmentRow(
        department=label,
        status_counts=tuple(sorted(counts.items())),
        team=tuple(zip(windows, team, strict=True)),
        required_agents=_required(schedule, now),
        queued=None,
        oldest_queued=None,
        open_chats=None,
        chat_slots=slots,
    )


def _required(schedule: Staffing | None, now: float) -> int | None:
    return required_at(schedule, now) if schedule is not None else None


def _queue_by_department(data: Omnichannel) -> dict[str | None, list[float]]:
    out: dict[str | None, list[float]] = {}
    for q in data.queue or ():
        out.setdefault(q.department, []).append(q.ts)
    return out


def _load_by_department(data: Omnichannel) -> dict[str | None, int]:
    out: dict[str | None, int] = {}
    for entry in data.load or ():
        out[entry.department] = out.get(entry.department, 0) + entry.chats
    return out


def _with_queue(
    row: DepartmentRow,
    queue_by: Mapping[str | None, list[float]],
    load_by: Mapping[str | None, int],
    key: str | None,
    data: Omnichannel,
) -> DepartmentRow:
    waiting = queue_by.get(key, [])
    return DepartmentRow(
        department=row.department,
        status_counts=row.status_counts,
        team=row.team,
        required_agents=row.required_agents,
        queued=len(waiting) if data.queue is not None else None,
        oldest_queued=min(waiting) if waiting else None,
        open_chats=load_by.get(key, 0) if data.load is not None else None,
        chat_slots=row.chat_slots,
    )


def _agent_chats(ctx: _Context, data: Omnichannel) -> tuple[tuple[str, int], ...]:
    if not ctx.agent_filter.per_agent or data.load is None:
        return ()
    chats: dict[str, int] = {}
    for entry in data.load:
        if ctx.agent_filter.wants(entry.username):
            chats[entry.username] = chats.get(entry.username, 0) + entry.chats
    for agent in ctx.live_agents or ():  # available agents without a chat have 0
        if agent.available and ctx.agent_filter.wants(agent.username):
            chats.setdefault(agent.username, 0)
    names = {a.username: a.name for a in ctx.live_agents or () if a.name}
    labels = ctx.agent_filter.labels(sorted(chats), names)
    return tuple(sorted((labels[u], n) for u, n in chats.items()))
