"""Which departments `backfill` writes, and who is in them: read once per server at the start.

Rocket.Chat keeps no membership history: the departments (livechat/department) and each
agent's department ids (`departments` on livechat/users/agent, newer servers) are read once
and today's membership is applied to every past day (docs/backfill.md says so). The groups,
their labels and their schedules come from exporter/departments.py, as live: the same label
for the same department, NO_DEPARTMENT for agents in none, an agent in several departments
counted in each; agents Rocket.Chat no longer lists as agents are in no department's series
(as live), only in the server-wide ones.

Where the department list or the membership cannot be read (403/404, an older server), a
warning says so and the day files get the server-wide series only; any other failure is a
failed request (exit 1, rerun to resume).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from exporter.backfillday import DepartmentSeries
from exporter.config import Config, ServerConfig
from exporter.departments import NO_DEPARTMENT, department_groups, department_schedule, selected
from exporter.model import AgentLive, Department
from exporter.rocketchat import RocketChatError
from exporter.rocketchat.client import RocketChatClient

log = logging.getLogger("exporter.backfill")

REFUSED = (403, 404)


def live_agents(client: RocketChatClient, config: Config) -> tuple[AgentLive, ...] | None:
    """The per-agent live status, read once when display names or departments need it
    (None: not needed, or not readable; the chart fallback has no agents either)."""
    names = config.agents.per_agent and config.agents.label == "name"
    if not names and not config.departments.enabled:
        return None
    try:
        return client.fetch_live_status().agents
    except RocketChatError as exc:
        if config.departments.enabled and exc.status not in REFUSED:
            raise  # a failed request: exit 1, the rerun resumes
        if names:
            log.warning(
                "display names unavailable; agents labelled by username", extra={"err": str(exc)}
            )
        return None


def department_series(
    client: RocketChatClient,
    config: Config,
    server: ServerConfig,
    live: Sequence[AgentLive] | None,
) -> tuple[DepartmentSeries, ...]:
    """The departments to write for `server` with their members and schedules; () when
    departments are off or cannot be read (warned)."""
    if not config.departments.enabled:
        return ()
    try:
        departments = client.fetch_departments()
    except RocketChatError as exc:
        if exc.status not in REFUSED:
            raise
        _server_wide_only(
            server,
            f"Rocket.Chat refused the department list (HTTP {exc.status} on livechat/department)",
            "grant the exporter's user view-livechat-departments (livechat-manager has it)",
        )
        return ()
    wants = config.agents.wants
    agents = [a for a in live or () if wants(a.username)]
    if live is None or not any(a.departments is not None for a in agents):
        _server_wide_only(
            server,
            "Rocket.Chat does not list the agents' departments (livechat/users/agent refused, "
            "or a server that does not return `departments`)",
            "let the exporter's user list agents (the warning on livechat/users/agent names "
            "the permission), or use a Rocket.Chat that returns `departments`",
        )
        return ()
    chosen, missing = selected(departments, config.departments.select)
    _warn_unknown(server, departments, missing)
    staffing = dict(server.department_staffing)
    return tuple(
        DepartmentSeries(
            label,
            frozenset(a.username for a in members),
            department_schedule(staffing, dep),
        )
        for label, dep, members in department_groups(chosen, config.departments.select, agents)
    )


def _server_wide_only(server: ServerConfig, why: str, fix: str) -> None:
    log.warning(
        f"departments: {why}; backfill writes the server-wide series only (no "
        f"backfill_department_* or department_required_agents); to get them: {fix}, then "
        "backfill again into a new --output",
        extra={"server": server.name, "endpoint": "departments"},
    )


def _warn_unknown(
    server: ServerConfig, departments: Sequence[Department], missing: Sequence[str]
) -> None:
    """Names in the departments list or in staffing rules that match no department."""
    known = {d.id for d in departments} | {d.name for d in departments}
    rules = [n for n, _ in server.department_staffing if n not in known and n != NO_DEPARTMENT]
    unknown = list(dict.fromkeys([*missing, *rules]))
    if unknown:
        names = ", ".join(sorted({d.name for d in departments})) or "none"
        log.warning(
            f"departments: {', '.join(unknown)} match no department on Rocket.Chat (existing: "
            f"{names}): no series for them; fix the departments list or the staffing rules "
            "naming them in the config",
            extra={"server": server.name, "endpoint": "departments"},
        )
