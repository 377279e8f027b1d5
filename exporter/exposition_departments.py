"""The department, queue and load families of /metrics (only with `departments` on).

Each entry of DEPARTMENT_FAMILIES is (name, type, help, extractor); an extractor yields
(labels, value) pairs from a snapshot, and exporter/exposition.py renders them after its own
families, so with departments off (snapshot.departments None) nothing is added to the page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from exporter.departments import DepartmentRow, DepartmentsSnapshot
from exporter.snapshot import ServerSnapshot

Labelled = Iterator[tuple[dict[str, str], float]]
Extract = Callable[[ServerSnapshot], Iterable[tuple[dict[str, str], float]]]


def _known(snap: ServerSnapshot) -> Labelled:
    if snap.departments is not None:
        for part, known in snap.departments.known:
            yield {"server": snap.server, "part": part}, int(known)


def _queue(value: Callable[[DepartmentsSnapshot], float | None]) -> Extract:
    def extract(snap: ServerSnapshot) -> Labelled:
        if snap.departments is not None:
            v = value(snap.departments)
            if v is not None:
                yield {"server": snap.server}, v

    return extract


def _department(value: Callable[[DepartmentRow], float | None]) -> Extract:
    def extract(snap: ServerSnapshot) -> Labelled:
        for row in snap.departments.rows if snap.departments is not None else ():
            v = value(row)
            if v is not None:
                yield {"server": snap.server, "department": row.department}, v

    return extract


def _status(snap: ServerSnapshot) -> Labelled:
    for row in snap.departments.rows if snap.departments is not None else ():
        for status, count in row.status_counts or ():
            yield {"server": snap.server, "department": row.department, "status": status}, count


def _team(value: Callable) -> Extract:
    def extract(snap: ServerSnapshot) -> Labelled:
        for row in snap.departments.rows if snap.departments is not None else ():
            for window, team in row.team:
                v = value(team)
                if v is not None:
                    labels = {"server": snap.server, "department": row.department}
                    yield {**labels, "window": window}, v

    return extract


def _occupancy(row: DepartmentRow) -> float | None:
    if row.open_chats is None or not row.chat_slots:
        return None
    return row.open_chats / row.chat_slots


def _agent_chats(snap: ServerSnapshot) -> Labelled:
    if snap.departments is not None:
        for agent, chats in snap.departments.agent_open_chats:
            yield {"server": snap.server, "agent": agent}, chats


DEPARTMENT_FAMILIES: tuple[tuple[str, str, str, Extract], ...] = (
    (
        "omnichannel_known",
        "gauge",
        "1 if the exporter could read this part (departments, membership, queue, load) this"
        " poll, 0 if it is unknown (route refused or missing): its series are then absent,"
        " never 0.",
        _known,
    ),
    (
        "queued_chats",
        "gauge",
        "Chats waiting in the Omnichannel queue (Rocket.Chat's total of queued inquiries).",
        _queue(lambda d: d.queued),
    ),
    (
        "queue_oldest_created_timestamp_seconds",
        "gauge",
        "Creation time of the oldest queued chat (absent when none waits); a chat returned to"
        " the queue counts from its creation. Age: time() minus this.",
        _queue(lambda d: d.oldest_queued),
    ),
    (
        "queue_wait_warning_seconds",
        "gauge",
        "The configured queue_wait_warning: the oldest-wait alert's threshold.",
        _queue(lambda d: d.queue_wait_warning),
    ),
    (
        "department_queued_chats",
        "gauge",
        "Chats waiting in the queue for the department.",
        _department(lambda r: r.queued),
    ),
    (
        "department_queue_oldest_created_timestamp_seconds",
        "gauge",
        "Creation time of the department's oldest queued chat (absent when none waits).",
        _department(lambda r: r.oldest_queued),
    ),
    (
        "department_agents",
        "gauge",
        "The department's agents by live status (available, away, busy, offline).",
        _status,
    ),
    (
        "department_required_agents",
        "gauge",
        "Agents the staffing schedule requires now in the department (rules naming it).",
        _department(lambda r: r.required_agents),
    ),
    (
        "department_agents_active",
        "gauge",
        "The department's agents with at least one availability interval in the window.",
        _team(lambda t: t.active),
    ),
    (
        "department_available_agents_min",
        "gauge",
        "Minimum number of the department's agents available at once over the window.",
        _team(lambda t: t.min),
    ),
    (
        "department_available_agents_max",
        "gauge",
        "Maximum number of the department's agents available at once over the window.",
        _team(lambda t: t.max),
    ),
    (
        "department_available_agents_avg",
        "gauge",
        "Time-weighted mean number of the department's agents available over the window.",
        _team(lambda t: t.avg),
    ),
    (
        "department_unstaffed_seconds",
        "gauge",
        "Seconds of the window with none of the department's agents available.",
        _team(lambda t: t.unstaffed_seconds),
    ),
    (
        "department_understaffed_seconds",
        "gauge",
        "Seconds of the window with fewer of the department's agents available than its"
        " schedule required.",
        _team(lambda t: t.understaffed_seconds),
    ),
    (
        "department_open_chats",
        "gauge",
        "Open chats served by the department's online, available agents (livechat/queue).",
        _department(lambda r: r.open_chats),
    ),
    (
        "department_chat_slots",
        "gauge",
        "Chats the department's available agents can take at once: each agent's"
        " simultaneous-chat limit (agent, else department, else chats_per_agent).",
        _department(lambda r: r.chat_slots),
    ),
    (
        "department_occupancy_ratio",
        "gauge",
        "Open chats divided by chat slots (absent without slots); 1 = every slot taken.",
        _department(_occupancy),
    ),
    (
        "agent_open_chats",
        "gauge",
        "Open chats the agent serves now (online, available agents; per_agent only).",
        _agent_chats,
    ),
)
