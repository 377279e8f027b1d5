"""Pure parsing of Rocket.Chat answers into model values. No HTTP, no clock, no logging.

Rocket.Chat's data is messy (repeated stops, lost time, sessions left open),
and proxies or old versions can answer with anything. These functions take any JSON value and
either return model values, counting what they had to skip or repair in `ParseStats`, or raise
`BadBody` when the answer as a whole is unusable. They never raise anything else.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime

from exporter.intervals import merge_intervals
from exporter.model import LIVE_STATUSES, AgentDay, AgentLive, DayHistory, Interval, ParseStats
from exporter.text import clean, clip


class BadBody(ValueError):
    """The answer as a whole is unusable (not an object, `success: false`, no list)."""


_fromiso = datetime.fromisoformat


def parse_instant(value: object) -> float | None:
    """An ISO-8601 instant (or EJSON `{"$date": ...}`) as unix seconds; None if unusable.

    Strings without a zone are taken as UTC, which is how Rocket.Chat stores dates.
    """
    if type(value) is dict:
        value = value.get("$date")
        if type(value) in (int, float):  # EJSON canonical form: epoch milliseconds
            try:
                seconds = value / 1000.0  # type: ignore[operator]
            except OverflowError:
                return None
            return seconds if math.isfinite(seconds) else None
    if type(value) is not str:
        return None
    try:
        parsed = _fromiso(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    except (ValueError, OverflowError):
        return None


# ---- available-for-service-history ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RawAgent:
    """One agent object of one page: intervals as given (unsorted, not merged)."""

    username: str
    intervals: tuple[Interval, ...]
    reported_seconds: float | None


@dataclass(frozen=True, slots=True)
class HistoryPage:
    agents: tuple[RawAgent, ...]
    received: int  # agent objects on this page, usable or not (drives the offset)
    total: int | None  # Rocket.Chat's `total`, None when absent or not a count
    stats: ParseStats


def _count(value: object) -> int | None:
    """A non-negative integer count, or None (bools and floats with fractions are not counts)."""
    if type(value) is int and value >= 0:
        return value
    if type(value) is float and math.isfinite(value) and value >= 0 and value.is_integer():
        return int(value)
    return None


def _seconds(value: object) -> float | None:
    if type(value) in (int, float) and math.isfinite(value) and value >= 0:  # type: ignore[arg-type,operator]
        return float(value)  # type: ignore[arg-type]
    return None


def _checked_object(body: object, list_key: str) -> list:
    if not isinstance(body, dict):
        raise BadBody(f"expected a JSON object, got {type(body).__name__}")
    if body.get("success") is False:
        text = body.get("error") or body.get("message") or "no error text"
        raise BadBody(f"success: false ({clip(str(text))})")
    items = body.get(list_key)
    if not isinstance(items, list):
        raise BadBody(f"no `{list_key}` list in the answer")
    return items


def _intervals(history: object) -> tuple[list[Interval], int]:
    """Usable intervals of one `serviceHistory` and how many entries were skipped."""
    if history is None:  # fullReport not honoured or no sessions: nothing to skip
        return [], 0
    if not isinstance(history, list):
        return [], 1
    out: list[Interval] = []
    skipped = 0
    for entry in history:
        if type(entry) is not dict:
            skipped += 1
            continue
        raw_start = entry.get("startedAt")
        raw_end = entry.get("stoppedAt")
        # Fast path for the normal case (two zoned ISO strings); ~1M entries per initial fill.
        try:
            a = _fromiso(raw_start)  # type: ignore[arg-type]
            b = _fromiso(raw_end)  # type: ignore[arg-type]
            if a.tzinfo is None or b.tzinfo is None:
                raise ValueError("naive")
            start: float | None = a.timestamp()
            end: float | None = b.timestamp()
        except (TypeError, ValueError, OverflowError):
            start = parse_instant(raw_start)
            end = parse_instant(raw_end)
        if start is None or end is None or end < start:
            skipped += 1
            continue
        out.append(Interval(start, end))
    return out, skipped


def parse_history_page(body: object) -> HistoryPage:
    """One page of available-for-service-history. Raises only BadBody."""
    items = _checked_object(body, "agents")
    agents: list[RawAgent] = []
    skipped_entries = skipped_agents = 0
    for item in items:
        username = item.get("username") if type(item) is dict else None
        if type(username) is not str or not username:
            skipped_agents += 1
            continue
        intervals, skipped = _intervals(item.get("serviceHistory"))
        skipped_entries += skipped
        reported = _seconds(item.get("availableTimeInSeconds"))
        agents.append(RawAgent(clean(username), tuple(intervals), reported))
    assert isinstance(body, dict)
    return HistoryPage(
        agents=tuple(agents),
        received=len(items),
        total=_count(body.get("total")),
        stats=ParseStats(skipped_entries=skipped_entries, skipped_agents=skipped_agents),
    )


@dataclass(frozen=True, slots=True)
class RawPage:
    """A history answer counted but not parsed yet (parsing waits until every page is in)."""

    body: dict
    received: int
    total: int | None


def history_counts(body: object) -> RawPage:
    """How many agents a history answer holds, and its `total`. Raises only BadBody."""
    items = _checked_object(body, "agents")
    assert isinstance(body, dict)
    return RawPage(body, len(items), _count(body.get("total")))


def assemble_day(day: date, pages: Iterable[HistoryPage]) -> DayHistory:
    """All pages of one day as a DayHistory: intervals sorted and merged per agent.

    An agent seen twice (pages shifted while agents were added) keeps the union of its
    intervals and the larger reported total. `total` is never below what was received.
    """
    raw: dict[str, list[Interval]] = {}
    reported: dict[str, float | None] = {}
    stats = ParseStats()
    total = received = 0
    for page in pages:
        stats = stats + page.stats
        received += page.received
        total = max(total, page.total or 0)
        for agent in page.agents:
            name = agent.username
            if name in raw:
                raw[name].extend(agent.intervals)
                prev = reported[name]
                if agent.reported_seconds is not None:
                    reported[name] = max(prev or 0.0, agent.reported_seconds)
            else:
                raw[name] = list(agent.intervals)
                reported[name] = agent.reported_seconds
    agents: dict[str, AgentDay] = {}
    merged_total = 0
    for name, intervals in raw.items():
        merged, n = merge_intervals(intervals)
        merged_total += n
        agents[name] = AgentDay(name, merged, reported[name])
    stats = stats + ParseStats(merged_entries=merged_total)
    return DayHistory(day=day, agents=agents, total=max(total, received), stats=stats)


@dataclass(frozen=True, slots=True)
class Kept:
    """One agent of the previous answer for the same day: what it said, what it became."""

    history: object  # `serviceHistory` as decoded
    reported: object  # `availableTimeInSeconds` as decoded
    agent: AgentDay
    skipped: int  # entries skipped while parsing it
    merged: int  # entries merged away
    plain: bool  # every entry's dates are strings: equal means parsed the same (see _plain)


DayMemo = Mapping[str, Kept]


def _same(a: object, b: object) -> bool:
    # `==` alone would call True equal to 1, which parse differently (a bool is no count).
    return type(a) is type(b) and a == b


def _plain(history: object) -> bool:
    """Whether an equal `serviceHistory` is sure to parse the same: deep `==` calls True equal
    to 1 (and {"$date": true} to {"$date": 1}), but a string is equal only to a string."""
    if history is None:
        return True
    return type(history) is list and all(
        type(e) is dict and type(e.get("startedAt")) is str and type(e.get("stoppedAt")) is str
        for e in history
    )


def parse_day_reusing(
    day: date, body: object, memo: DayMemo | None
) -> tuple[DayHistory, dict[str, Kept]]:
    """A one-page answer (count=0) as `assemble_day` would make it, reusing the agents that
    did not change since `memo`'s answer (same day): a minute apart, nearly all of them.

    Their AgentDay objects are the very ones of the previous day, so what is built from them
    can be kept too. The result equals `assemble_day(day, [parse_history_page(body)])`;
    with a username twice on the page it is exactly that (and no memo).
    """
    items = _checked_object(body, "agents")
    memo = memo or {}
    agents: dict[str, AgentDay] = {}
    kept: dict[str, Kept] = {}
    skipped_entries = skipped_agents = merged_entries = 0
    for item in items:
        username = item.get("username") if type(item) is dict else None
        if type(username) is not str or not username:
            skipped_agents += 1
            continue
        name = clean(username)
        if name in agents:  # pages shifted, or a broken server: the general path
            return assemble_day(day, [parse_history_page(body)]), {}
        history = item.get("serviceHistory")
        reported = item.get("availableTimeInSeconds")
        old = memo.get(name)
        if (
            old is not None
            and old.plain
            and _same(old.history, history)
            and _same(old.reported, reported)
        ):
            entry = old
        else:
            intervals, skipped = _intervals(history)
            merged, n = merge_intervals(intervals)
            agent = AgentDay(name, merged, _seconds(reported))
            entry = Kept(history, reported, agent, skipped, n, _plain(history))
        agents[name] = entry.agent
        kept[name] = entry
        skipped_entries += entry.skipped
        merged_entries += entry.merged
    assert isinstance(body, dict)
    total = _count(body.get("total")) or 0
    stats = ParseStats(skipped_entries, skipped_agents, merged_entries)
    return DayHistory(day=day, agents=agents, total=max(total, len(items)), stats=stats), kept


def parse_history(day: date, body: object) -> DayHistory:
    """A single-page answer as a DayHistory (convenience for tests and tools)."""
    return assemble_day(day, [parse_history_page(body)])


# ---- live status ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentsPage:
    agents: tuple[AgentLive, ...]
    received: int
    total: int | None
    skipped: int  # user objects without a usable username


def parse_agents_page(body: object) -> AgentsPage:
    """One page of GET /api/v1/livechat/users/agent. Raises only BadBody."""
    items = _checked_object(body, "users")
    agents: list[AgentLive] = []
    skipped = 0
    for item in items:
        username = item.get("username") if type(item) is dict else None
        if type(username) is not str or not username:
            skipped += 1
            continue
        presence = item.get("status")
        agents.append(
            AgentLive(
                username=clean(username),
                # An agent without a presence is not connected, so not available.
                presence=clean(presence) if type(presence) is str and presence else "offline",
                livechat_available=item.get("statusLivechat") == "available",
                name=clean(item["name"]) if type(item.get("name")) is str else None,
                departments=department_ids(item.get("departments")),
                max_chats=chat_limit(item.get("livechat")),
            )
        )
    assert isinstance(body, dict)
    return AgentsPage(tuple(agents), len(items), _count(body.get("total")), skipped)


def department_ids(value: object) -> tuple[str, ...] | None:
    """An agent's `departments` (ids, newer servers); None when absent or not a list."""
    if not isinstance(value, list):
        return None
    return tuple(sorted({clean(v) for v in value if type(v) is str and v}))


def chat_limit(livechat: object) -> int | None:
    """`livechat.maxNumberSimultaneousChat` as a positive int (the admin UI may store it as a
    string); None when absent, 0 (Rocket.Chat's "no limit") or unusable."""
    if type(livechat) is not dict:
        return None
    value = livechat.get("maxNumberSimultaneousChat")
    if type(value) is str:
        value = int(value) if value.strip().isdigit() else None
    n = _count(value)
    return n if n else None


def unique_agents(pages: Iterable[AgentsPage]) -> tuple[AgentLive, ...]:
    """Agents of all pages, first occurrence wins, sorted by username."""
    seen: dict[str, AgentLive] = {}
    for page in pages:
        for agent in page.agents:
            seen.setdefault(agent.username, agent)
    return tuple(seen[name] for name in sorted(seen))


def live_counts(agents: Iterable[AgentLive]) -> dict[str, int]:
    """Per-status counts exactly as Rocket.Chat's agents-status chart would bucket them."""
    counts = dict.fromkeys(LIVE_STATUSES, 0)
    for agent in agents:
        counts[agent.chart_status] += 1
    return counts


def parse_agents_status(body: object) -> dict[str, int]:
    """GET .../dashboards/charts/agents-status: `{available, away, busy, offline}` counts.

    A missing bucket is 0; an answer with none of the buckets, or a bucket that is not a
    count, is BadBody (a wrong number would be worse than no number).
    """
    if not isinstance(body, dict):
        raise BadBody(f"expected a JSON object, got {type(body).__name__}")
    if body.get("success") is False:
        text = body.get("error") or body.get("message") or "no error text"
        raise BadBody(f"success: false ({clip(str(text))})")
    if not any(k in body for k in LIVE_STATUSES):
        raise BadBody("none of available/away/busy/offline in the answer")
    counts: dict[str, int] = {}
    for key in LIVE_STATUSES:
        value = _count(body.get(key, 0))
        if value is None:
            raise BadBody(f"`{key}` is not a count: {clip(str(body.get(key)), 50)}")
        counts[key] = value
    return counts
