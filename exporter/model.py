"""Plain values that flow between the stages.

config -> client -> history cache -> availability math -> snapshot -> exposition -> HTTP.
Times are unix seconds (float, UTC); calendar days are `datetime.date` in the Rocket.Chat
server's own time zone. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date


@dataclass(frozen=True, slots=True)
class Interval:
    """A closed availability session, [start, end] in unix seconds, start <= end."""

    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class ParseStats:
    """What the history parser had to skip or repair, so it can be counted, not hidden."""

    skipped_entries: int = 0  # missing/null/unparsable dates, stoppedAt before startedAt
    skipped_agents: int = 0  # agent objects without a usable username
    merged_entries: int = 0  # duplicate or overlapping entries merged away

    def __add__(self, other: ParseStats) -> ParseStats:
        return ParseStats(
            self.skipped_entries + other.skipped_entries,
            self.skipped_agents + other.skipped_agents,
            self.merged_entries + other.merged_entries,
        )


@dataclass(frozen=True, slots=True)
class AgentDay:
    """One agent's closed sessions on one server-local day, as Rocket.Chat returned them.

    `intervals` are sorted by start and already merged (no overlaps).
    `reported_seconds` is Rocket.Chat's own `availableTimeInSeconds` (None when absent).
    """

    username: str
    intervals: tuple[Interval, ...]
    reported_seconds: float | None


@dataclass(frozen=True, slots=True)
class DayHistory:
    """All agents' history for one server-local day (every page of it)."""

    day: date
    agents: dict[str, AgentDay]  # by username; treat as read-only
    total: int  # Rocket.Chat's `total` (distinct agents with data that day)
    stats: ParseStats = field(default_factory=ParseStats)

    @property
    def missing_agents(self) -> int:
        """Agents Rocket.Chat counted but did not return (pagination rejected or capped)."""
        return max(0, self.total - len(self.agents))


# Presence (`status`) and omnichannel status (`statusLivechat`) as Rocket.Chat names them.
PRESENCES = ("online", "away", "busy", "offline")
LIVE_STATUSES = ("available", "away", "busy", "offline")  # the agents-status chart's buckets


@dataclass(frozen=True, slots=True)
class AgentLive:
    username: str
    presence: str  # online | away | busy | offline (unknown values are kept as-is)
    livechat_available: bool  # statusLivechat == "available"
    name: str | None = None  # display name, for agents.label: name
    # Newer servers list each agent's department ids and its simultaneous-chat limit
    # (`livechat.maxNumberSimultaneousChat`); None where the answer did not say.
    departments: tuple[str, ...] | None = None
    max_chats: int | None = None

    @property
    def available(self) -> bool:
        """Available for service now: statusLivechat available and presence not offline."""
        return self.livechat_available and self.presence != "offline"

    @property
    def chart_status(self) -> str:
        """The bucket Rocket.Chat's agents-status chart puts this agent in."""
        if not self.livechat_available or self.presence == "offline":
            return "offline"
        if self.presence in ("away", "busy"):
            return self.presence
        return "available"


@dataclass(frozen=True, slots=True)
class LiveStatus:
    """Who is available now.

    `agents` is None when only the agents-status chart could be read (the per-agent route was
    forbidden); `counts` is always filled, keys exactly LIVE_STATUSES.
    """

    agents: tuple[AgentLive, ...] | None
    counts: dict[str, int]


# ---- queue, departments, load (exporter/departments.py) ---------------------------------------


@dataclass(frozen=True, slots=True)
class Department:
    """One Omnichannel department (GET livechat/department)."""

    id: str
    name: str
    enabled: bool = True
    max_chats: int | None = None  # the department's maxNumberSimultaneousChat, if set (> 0)


@dataclass(frozen=True, slots=True)
class Queued:
    """One queued chat (GET livechat/inquiries.list): its department id and creation time.

    `ts` is when the inquiry was created, not when it was (re)queued: a chat sent back to the
    queue looks older than it has waited (Rocket.Chat does not return `queuedAt`).
    """

    department: str | None
    ts: float


@dataclass(frozen=True, slots=True)
class Load:
    """Open chats served by one agent in one department (GET livechat/queue)."""

    username: str
    department: str | None
    chats: int


@dataclass(frozen=True, slots=True)
class Omnichannel:
    """What the department, queue and load routes said this poll; None = unknown (refused,
    missing or failed), which is exported as such, never as zero."""

    departments: tuple[Department, ...] | None
    queue: tuple[Queued, ...] | None
    queue_total: int | None  # Rocket.Chat's `total` (can exceed len(queue) if capped)
    load: tuple[Load, ...] | None


@dataclass(frozen=True, slots=True)
class ClosedRoom:
    """What the exporter keeps of one closed livechat room: no visitor, no text, no name."""

    id: str
    closed_at: float  # unix seconds, Rocket.Chat's clock
    department: str | None  # department id; None: no department
    created_at: float | None  # `ts`
    served: bool  # has `servedBy`: an agent took it; False: abandoned in the queue
    served_at: float | None  # `servedBy.ts` (None where missing even though served)
    first_response: float | None  # `metrics.response.ft`, seconds
    duration: float | None  # `metrics.chatDuration`, seconds

    @property
    def abandoned(self) -> bool:
        return not self.served

    @property
    def queue_wait(self) -> float | None:
        if self.served_at is None or self.created_at is None:
            return None
        return max(0.0, self.served_at - self.created_at)
