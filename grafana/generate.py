"""Build the Grafana dashboards in grafana/dashboards/ (the JSON there is generated: edit this).

    python grafana/generate.py          # rewrite grafana/dashboards/*.json
    python grafana/generate.py --check  # exit 1 if the committed JSON is not what this builds

Standard library only. The output works with file provisioning, the Grafana dashboard sidecar
and manual import alike: every panel and query names the data source through the `datasource`
variable (no `__inputs`), and each dashboard has a fixed `uid` so links and bookmarks survive
re-imports.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT_DIR = Path(__file__).resolve().parent / "dashboards"

DS = {"type": "prometheus", "uid": "${datasource}"}
TAGS = ["rocketchat", "rocketchat-omnichannel", "omnichannel"]
LINK_TAG = "rocketchat-omnichannel"  # every dashboard with this tag is linked from the others
STAFFING_UID = "rc-omni-staffing"
AGENT_UID = "rc-omni-agent"
SCHEMA_VERSION = 39

# Label filters. Multi-value and "All" variables are regex-escaped by Grafana, hence `=~`.
SRV = 'job=~"$job", server=~"$server"'
WIN = SRV + ', window=~"$window"'
AGT = SRV + ', agent=~"$agent"'
AGT_WIN = AGT + ', window=~"$window"'

Json = dict[str, Any]


# ---- queries and panels ------------------------------------------------------------------------


def target(expr: str, legend: str = "", ref: str = "A", table: bool = False) -> Json:
    t: Json = {"datasource": DS, "refId": ref, "expr": expr, "legendFormat": legend or "__auto"}
    if table:  # one row per series at the end of the range
        t.update({"format": "table", "instant": True, "range": False})
    return t


def thresholds(*steps: tuple[float | None, str]) -> Json:
    return {
        "mode": "absolute",
        "steps": [{"color": color, "value": value} for value, color in steps],
    }


def value_map(**texts: tuple[str, str]) -> list[Json]:
    """Value mappings: value_map(**{"0": ("Failing", "red")})."""
    options = {
        value: {"text": text, "color": color, "index": i}
        for i, (value, (text, color)) in enumerate(texts.items())
    }
    return [{"type": "value", "options": options}]


@dataclass
class Layout:
    """Places panels left to right in a 24-column grid, wrapping to a new line when full."""

    x: int = 0
    y: int = 0
    line_height: int = 0
    next_id: int = 1
    panels: list[Json] = field(default_factory=list)

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(
            {
                "type": "row",
                "id": self._id(),
                "title": title,
                "collapsed": False,
                "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1},
                "panels": [],
            }
        )
        self.y += 1

    def add(self, panel: Json, w: int, h: int) -> None:
        if self.x + w > 24:
            self._newline()
        panel = {"id": self._id(), **panel, "gridPos": {"x": self.x, "y": self.y, "w": w, "h": h}}
        self.panels.append(panel)
        self.x += w
        self.line_height = max(self.line_height, h)

    def _newline(self) -> None:
        self.y += self.line_height
        self.x, self.line_height = 0, 0

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


def panel(
    kind: str,
    title: str,
    description: str,
    unit: str,
    targets: list[Json],
    *,
    options: Json | None = None,
    defaults: Json | None = None,
    overrides: list[Json] | None = None,
    transformations: list[Json] | None = None,
) -> Json:
    p: Json = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {
            "defaults": {"unit": unit, **(defaults or {})},
            "overrides": overrides or [],
        },
        "options": options or {},
    }
    if transformations:
        p["transformations"] = transformations
    return p


def stat(title: str, description: str, unit: str, targets: list[Json], **defaults: Any) -> Json:
    return panel(
        "stat",
        title,
        description,
        unit,
        targets,
        options={
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "textMode": "auto",
            "justifyMode": "auto",
            "orientation": "auto",
        },
        defaults={"color": {"mode": "thresholds"}, **defaults},
    )


def dashed(series: str, *extra: dict[str, Any]) -> dict[str, Any]:
    """A field override drawing the series whose name matches `series` as a dashed line."""
    return {
        "matcher": {"id": "byRegexp", "options": series},
        "properties": [
            {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
            *extra,
        ],
    }


def timeseries(
    title: str,
    description: str,
    unit: str,
    targets: list[Json],
    *,
    stacked: bool = False,
    overrides: list[Json] | None = None,
    **defaults: Any,
) -> Json:
    custom: Json = {"fillOpacity": 10, "showPoints": "never", "spanNulls": False}
    if stacked:
        custom.update({"stacking": {"mode": "normal", "group": "A"}, "fillOpacity": 60})
    return panel(
        "timeseries",
        title,
        description,
        unit,
        targets,
        options={
            "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        defaults={"custom": custom, **defaults},
        overrides=overrides,
    )


def bargauge(title: str, description: str, unit: str, targets: list[Json], **defaults: Any) -> Json:
    return panel(
        "bargauge",
        title,
        description,
        unit,
        targets,
        options={
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "orientation": "horizontal",
            "displayMode": "gradient",
            "showUnfilled": True,
            "minVizHeight": 10,
        },
        defaults={"color": {"mode": "thresholds"}, "min": 0, **defaults},
    )


def table(
    title: str,
    description: str,
    unit: str,
    targets: list[Json],
    columns: dict[str, str],
    *,
    sort_by: str,
    overrides: list[Json] | None = None,
    **defaults: Any,
) -> Json:
    """Instant queries merged into one row per label set; `columns` renames `Value #<ref>`."""
    labels = [c for c in columns if not c.startswith("Value #")]
    values = [c for c in columns if c.startswith("Value #")]
    order = {name: i for i, name in enumerate(labels + values)}
    return panel(
        "table",
        title,
        description,
        unit,
        targets,
        options={"showHeader": True, "sortBy": [{"displayName": sort_by, "desc": True}]},
        defaults=defaults,
        overrides=overrides,
        transformations=[
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {
                    # Keep only the named columns (the label columns `max by` left, the values).
                    "excludeByName": {"Time": True},
                    "indexByName": order,
                    "renameByName": columns,
                },
            },
        ],
    )


def unit_override(column: str, unit: str, **extra: Any) -> Json:
    props = [{"id": "unit", "value": unit}] + [
        {"id": key, "value": value} for key, value in extra.items()
    ]
    return {"matcher": {"id": "byName", "options": column}, "properties": props}


# ---- dashboard scaffolding ---------------------------------------------------------------------


def datasource_variable() -> Json:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "options": [],
        "refresh": 1,
        "regex": "",
    }


def query_variable(name: str, label: str, query: str, *, include_all: bool = True) -> Json:
    var: Json = {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "definition": query,
        "query": query,
        "refresh": 2,  # on time range change: new servers/agents appear without a reload
        "sort": 1,
        "multi": True,
        "includeAll": include_all,
        "current": {},
        "hide": 0,
        "options": [],
        "regex": "",
    }
    if include_all:
        var["allValue"] = ".*"
        var["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
    return var


COMMON_VARIABLES = [
    datasource_variable(),
    query_variable("job", "Job", "label_values(rocketchat_omnichannel_up, job)"),
    query_variable(
        "server", "Server", 'label_values(rocketchat_omnichannel_up{job=~"$job"}, server)'
    ),
]
WINDOW_VARIABLE = query_variable(
    "window",
    "Window",
    'label_values(rocketchat_omnichannel_agents_active{job=~"$job", server=~"$server"}, window)',
)

ALERT_ANNOTATION = {
    "name": "Omnichannel alerts",
    "datasource": DS,
    "enable": True,
    "iconColor": "red",
    "expr": 'ALERTS{alertname=~"RocketChatOmnichannel.*", alertstate="firing", server=~"$server"}',
    "titleFormat": "{{ alertname }}",
    "textFormat": "{{ server }} ({{ severity }})",
    "step": "60s",
}


def dashboard(uid: str, title: str, description: str, variables: list[Json], panels: list[Json]):
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": TAGS,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "time": {"from": "now-24h", "to": "now"},
        "refresh": "1m",
        "timezone": "",
        "links": [
            {
                "title": "Rocket.Chat Omnichannel",
                "type": "dashboards",
                "tags": [LINK_TAG],
                "asDropdown": False,
                "includeVars": True,
                "keepTime": True,
                "targetBlank": False,
            }
        ],
        "annotations": {"list": [ALERT_ANNOTATION]},
        "templating": {"list": variables},
        "panels": panels,
    }


# ---- staffing overview -------------------------------------------------------------------------

AVAILABLE = f'max by (server) (rocketchat_omnichannel_agents{{status="available", {SRV}}})'
REQUIRED = f"max by (server) (rocketchat_omnichannel_required_agents{{{SRV}}})"
NO_SCHEDULE = " No data means no staffing schedule is configured for the server."
AVAILABLE_MEANS = (
    " Available = omnichannel status 'available' and presence online, as Rocket.Chat's"
    " agents-status chart counts them (away and busy agents are counted separately)."
)


def staffing_now(lay: Layout) -> None:
    lay.row("Staffing now")
    lay.add(
        stat(
            "Available agents",
            "Agents available for service right now, per server." + AVAILABLE_MEANS,
            "none",
            [target(AVAILABLE, "{{server}}")],
            thresholds=thresholds((None, "red"), (1, "green")),
        ),
        6,
        5,
    )
    lay.add(
        stat(
            "Required agents",
            "Agents the staffing schedule requires right now (the `staffing` section of the"
            " exporter's config). The staffing alerts compare against this." + NO_SCHEDULE,
            "none",
            [target(REQUIRED, "{{server}}")],
            thresholds=thresholds((None, "blue")),
        ),
        6,
        5,
    )
    lay.add(
        stat(
            "Staffing gap",
            "Available minus required agents right now: negative means understaffed." + NO_SCHEDULE,
            "none",
            [target(f"{AVAILABLE} - {REQUIRED}", "{{server}}")],
            thresholds=thresholds((None, "red"), (0, "green")),
        ),
        6,
        5,
    )
    lay.add(
        stat(
            "Understaffed today",
            "Time today (server-local calendar day) during which fewer agents were available"
            " than the schedule required. Needs the `today` window (configured by default)."
            + NO_SCHEDULE,
            "s",
            [
                target(
                    "max by (server) (rocketchat_omnichannel_understaffed_seconds"
                    f'{{{SRV}, window="today"}})',
                    "{{server}}",
                )
            ],
            thresholds=thresholds((None, "green"), (1, "orange")),
        ),
        6,
        5,
    )
    lay.add(
        timeseries(
            "Available vs required agents",
            "Agents available for service over time against the number the staffing schedule"
            " requires (dashed)." + AVAILABLE_MEANS,
            "none",
            [
                target(AVAILABLE, "{{server}} available", "A"),
                target(REQUIRED, "{{server}} required", "B"),
            ],
            overrides=[dashed(".* required", {"id": "custom.fillOpacity", "value": 0})],
            min=0,
            decimals=0,
        ),
        12,
        9,
    )
    lay.add(
        timeseries(
            "Agents by status",
            "Omnichannel agents by live status (available, away, busy, offline), stacked."
            " Offline includes agents whose omnichannel status is 'not available'. Exported"
            " even when per-agent series are disabled.",
            "none",
            [
                target(
                    f"max by (server, status) (rocketchat_omnichannel_agents{{{SRV}}})",
                    "{{server}} {{status}}",
                )
            ],
            stacked=True,
            min=0,
            decimals=0,
        ),
        12,
        9,
    )


def staffing_windows(lay: Layout) -> None:
    team = "max by (server, window) (rocketchat_omnichannel_{}{{" + WIN + "}})"
    lay.row("Staffing per window (rolling windows and calendar days, as configured)")
    lay.add(
        bargauge(
            "Time understaffed",
            "Seconds of each window during which fewer agents were available than the staffing"
            " schedule required at that moment." + NO_SCHEDULE,
            "s",
            [
                target(
                    "max by (server, window) "
                    f"(rocketchat_omnichannel_understaffed_seconds{{{WIN}}})",
                    "{{server}} {{window}}",
                )
            ],
            thresholds=thresholds((None, "green"), (1, "orange")),
        ),
        12,
        8,
    )
    lay.add(
        bargauge(
            "Time unstaffed",
            "Seconds of each window during which no agent at all was available.",
            "s",
            [
                target(
                    f"max by (server, window) (rocketchat_omnichannel_unstaffed_seconds{{{WIN}}})",
                    "{{server}} {{window}}",
                )
            ],
            thresholds=thresholds((None, "green"), (1, "red")),
        ),
        12,
        8,
    )
    lay.add(
        table(
            "Concurrent available agents per window",
            "Fewest, time-weighted mean and most agents available at the same time within each"
            " window, and how many agents were available at all.",
            "none",
            [
                target(team.format(metric), ref=ref, table=True)
                for ref, metric in (
                    ("A", "available_agents_min"),
                    ("B", "available_agents_avg"),
                    ("C", "available_agents_max"),
                    ("D", "agents_active"),
                )
            ],
            {
                "server": "Server",
                "window": "Window",
                "Value #A": "Min",
                "Value #B": "Avg",
                "Value #C": "Max",
                "Value #D": "Agents active",
            },
            sort_by="Avg",
            decimals=1,
        ),
        12,
        8,
    )
    lay.add(
        bargauge(
            "Team availability ratio",
            "Mean concurrent available agents divided by the agents active in the window: the"
            " average share of the window that an agent who worked in it was available.",
            "percentunit",
            [
                target(
                    "max by (server, window) "
                    f"(rocketchat_omnichannel_available_agents_avg{{{WIN}}})\n/\n"
                    "max by (server, window) "
                    f"(rocketchat_omnichannel_agents_active{{{WIN}}} > 0)",
                    "{{server}} {{window}}",
                )
            ],
            max=1,
            thresholds=thresholds((None, "red"), (0.5, "orange"), (0.8, "green")),
        ),
        12,
        8,
    )


def staffing_agents(lay: Layout) -> None:
    lay.row("Agents")
    agent_link = (
        f"/d/{AGENT_UID}?${{datasource:queryparam}}&${{job:queryparam}}"
        "&var-server=${__data.fields.server}&var-agent=${__data.fields.agent}"
        "&${window:queryparam}&${__url_time_range}"
    )
    agent_selector = "max by (server, agent, window) (rocketchat_omnichannel_agent_{}{{{}}})"
    lay.add(
        table(
            "Agents ranked by availability",
            "Each agent's share of each window spent available for service, available time and"
            " number of availability intervals; best first. Click an agent for the agent"
            " dashboard. Empty when per-agent series are disabled in the exporter's config.",
            "percentunit",
            [
                target(agent_selector.format("available_ratio", WIN), ref="A", table=True),
                target(agent_selector.format("available_seconds", WIN), ref="B", table=True),
                target(agent_selector.format("service_intervals", WIN), ref="C", table=True),
            ],
            {
                "server": "Server",
                "agent": "Agent",
                "window": "Window",
                "Value #A": "Availability",
                "Value #B": "Available time",
                "Value #C": "Intervals",
            },
            sort_by="Availability",
            overrides=[
                unit_override(
                    "Availability",
                    "percentunit",
                    **{"custom.cellOptions": {"type": "gauge", "mode": "basic"}, "max": 1},
                ),
                unit_override("Available time", "s"),
                unit_override("Intervals", "none"),
                {
                    "matcher": {"id": "byName", "options": "Agent"},
                    "properties": [
                        {
                            "id": "links",
                            "value": [{"title": "Agent detail", "url": agent_link}],
                        }
                    ],
                },
            ],
            min=0,
        ),
        24,
        11,
    )


def exporter_health(lay: Layout) -> None:
    lay.row("Exporter health")
    lay.add(
        stat(
            "Poll status",
            "Whether the exporter's last poll of each Rocket.Chat server fully succeeded"
            " (rocketchat_omnichannel_up). Failing: see the PollFailing and AuthFailing alerts.",
            "none",
            [target(f"min by (server) (rocketchat_omnichannel_up{{{SRV}}})", "{{server}}")],
            mappings=value_map(**{"0": ("Failing", "red"), "1": ("OK", "green")}),
            thresholds=thresholds((None, "red"), (1, "green")),
        ),
        5,
        5,
    )
    lay.add(
        stat(
            "Age of last successful poll",
            "Time since the last fully successful poll. Normally below one poll interval;"
            " after max_staleness (300 s by default) the exporter stops exporting the"
            " snapshot's numbers.",
            "s",
            [
                target(
                    "time() - max by (server) "
                    f"(rocketchat_omnichannel_last_success_timestamp_seconds{{{SRV}}})",
                    "{{server}}",
                )
            ],
            thresholds=thresholds((None, "green"), (180, "orange"), (300, "red")),
        ),
        5,
        5,
    )
    lay.add(
        stat(
            "Effective poll interval",
            "How often the exporter polls Rocket.Chat: the configured interval, stretched when"
            " Rocket.Chat's rate limit or slow polls force it.",
            "s",
            [
                target(
                    f"max by (server) (rocketchat_omnichannel_poll_interval_seconds{{{SRV}}})",
                    "{{server}}",
                )
            ],
            thresholds=thresholds((None, "blue")),
        ),
        5,
        5,
    )
    lay.add(
        stat(
            "Agents truncated",
            "Agents Rocket.Chat counted for today but did not return (its page size limit):"
            " their history is missing. Raise 'Default Count' and 'Upper Count Limit' in"
            " Rocket.Chat's REST API settings above the number of agents.",
            "none",
            [
                target(
                    f"max by (server) (rocketchat_omnichannel_agents_truncated{{{SRV}}})",
                    "{{server}}",
                )
            ],
            thresholds=thresholds((None, "green"), (1, "orange")),
        ),
        5,
        5,
    )
    lay.add(
        stat(
            "Exporter version",
            "Version of each running exporter (rocketchat_omnichannel_exporter_build_info).",
            "none",
            [
                target(
                    'count by (version) (rocketchat_omnichannel_exporter_build_info{job=~"$job"})',
                    "{{version}}",
                )
            ],
            thresholds=thresholds((None, "blue")),
        ),
        4,
        5,
    )
    lay.add(
        timeseries(
            "Poll duration and interval",
            "How long each poll took (including waits imposed by Rocket.Chat's rate limit)"
            " against the effective interval between polls. A duration close to the interval"
            " means polling cannot keep up.",
            "s",
            [
                target(
                    f"max by (server) (rocketchat_omnichannel_poll_duration_seconds{{{SRV}}})",
                    "{{server}} duration",
                    "A",
                ),
                target(
                    f"max by (server) (rocketchat_omnichannel_poll_interval_seconds{{{SRV}}})",
                    "{{server}} interval",
                    "B",
                ),
            ],
            min=0,
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Rocket.Chat API requests by status code",
            "Requests the exporter makes to Rocket.Chat, per minute, by endpoint and HTTP"
            " status ('error' = no answer: timeout, connection or TLS failure).",
            "reqpm",
            [
                target(
                    "60 * sum by (server, endpoint, code) "
                    f"(rate(rocketchat_omnichannel_api_requests_total{{{SRV}}}[$__rate_interval]))",
                    "{{server}} {{endpoint}} {{code}}",
                )
            ],
            min=0,
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Rate limiting (HTTP 429)",
            "Requests Rocket.Chat refused with 429 Too Many Requests, per minute, by endpoint."
            " Rocket.Chat allows 10 calls per minute per route and client IP unless the user"
            " has the api-bypass-rate-limit permission; the exporter then stretches its interval.",
            "reqpm",
            [
                target(
                    "60 * sum by (server, endpoint) (rate(rocketchat_omnichannel_api_requests_total"
                    f'{{{SRV}, code="429"}}[$__rate_interval]))\n'
                    # The 429 series only exist once Rocket.Chat refused something: draw 0.
                    "or\n0 * sum by (server, endpoint) "
                    f"(rate(rocketchat_omnichannel_api_requests_total{{{SRV}}}[$__rate_interval]))",
                    "{{server}} {{endpoint}}",
                )
            ],
            min=0,
        ),
        8,
        8,
    )
    lay.add(
        timeseries(
            "Failed polls by reason",
            "Failed polls per minute by reason (auth, permission, licence, rate_limited,"
            " server_error, network, invalid_response, pagination); 'none' at 0 while no poll"
            " has failed since the exporter started.",
            "cpm",
            [
                target(
                    "60 * sum by (server, reason) (rate(rocketchat_omnichannel_poll_errors_total"
                    f"{{{SRV}}}[$__rate_interval]))\n"
                    # A reason's series only exists once it happened: draw 0 as reason "none".
                    "or on (server)\nlabel_replace(0 * max by (server) (rocketchat_omnichannel_up"
                    f'{{{SRV}}}), "reason", "none", "", "")',
                    "{{server}} {{reason}}",
                )
            ],
            min=0,
        ),
        8,
        8,
    )
    lay.add(
        timeseries(
            "History anomalies",
            "History entries the exporter skipped (unparsable, or agents without a username)"
            " or merged (duplicate/overlapping sessions Rocket.Chat recorded twice) in the"
            " cached days.",
            "none",
            [
                target(
                    f"max by (server, kind) (rocketchat_omnichannel_history_anomalies{{{SRV}}})",
                    "{{server}} {{kind}}",
                )
            ],
            min=0,
        ),
        8,
        8,
    )


# ---- queue and departments (only with `departments` on in the exporter's config) ----------------

DEP = SRV + ', department=~"$department"'
DEPARTMENT_VARIABLE = query_variable(
    "department",
    "Department",
    'label_values(rocketchat_omnichannel_department_queued_chats{job=~"$job", server=~"$server"},'
    " department)",
)
NEEDS_DEPARTMENTS = (
    " Needs `departments` in the exporter's config; no data also means the queue is unknown"
    " (see rocketchat_omnichannel_omnichannel_known)."
)


def queue_and_departments(lay: Layout) -> None:
    lay.row("Queue and departments")
    lay.add(
        stat(
            "Chats waiting",
            "Chats queued right now (Rocket.Chat's total of queued inquiries)." + NEEDS_DEPARTMENTS,
            "none",
            [
                target(
                    f"max by (server) (rocketchat_omnichannel_queued_chats{{{SRV}}})", "{{server}}"
                )
            ],
            thresholds=thresholds((None, "green"), (1, "orange")),
        ),
        6,
        5,
    )
    lay.add(
        stat(
            "Oldest queued chat",
            "Age of the oldest queued chat, from its creation time: a chat returned to the queue"
            " counts from when it was first created." + NEEDS_DEPARTMENTS,
            "s",
            [
                target(
                    "time() - min by (server) "
                    f"(rocketchat_omnichannel_queue_oldest_created_timestamp_seconds{{{SRV}}})",
                    "{{server}}",
                )
            ],
            thresholds=thresholds((None, "green"), (300, "orange")),
        ),
        6,
        5,
    )
    lay.add(
        bargauge(
            "Occupancy by department",
            "Open chats of the department's available agents divided by their chat slots (each"
            " agent's simultaneous-chat limit). 100 % = every slot taken." + NEEDS_DEPARTMENTS,
            "percentunit",
            [
                target(
                    "max by (server, department) "
                    f"(rocketchat_omnichannel_department_occupancy_ratio{{{DEP}}})",
                    "{{server}} {{department}}",
                )
            ],
            max=1,
            thresholds=thresholds((None, "green"), (0.8, "orange"), (1, "red")),
        ),
        12,
        5,
    )
    lay.add(
        timeseries(
            "Queue by department",
            "Chats waiting per department over time. (none): chats without a department (the"
            " public queue)." + NEEDS_DEPARTMENTS,
            "none",
            [
                target(
                    "max by (server, department) "
                    f"(rocketchat_omnichannel_department_queued_chats{{{DEP}}})",
                    "{{server}} {{department}}",
                )
            ],
            stacked=True,
            min=0,
            decimals=0,
        ),
        12,
        9,
    )
    lay.add(
        timeseries(
            "Oldest wait by department",
            "Age of each department's oldest queued chat (from its creation time); no line when"
            " nobody waits." + NEEDS_DEPARTMENTS,
            "s",
            [
                target(
                    "time() - max by (server, department) "
                    "(rocketchat_omnichannel_department_queue_oldest_created_timestamp_seconds"
                    f"{{{DEP}}})",
                    "{{server}} {{department}}",
                )
            ],
            min=0,
        ),
        12,
        9,
    )
    lay.add(
        timeseries(
            "Available vs required per department",
            "Each department's agents available now against what the staffing rules naming it"
            " require (dashed). An agent in several departments counts in each."
            + NEEDS_DEPARTMENTS,
            "none",
            [
                target(
                    "max by (server, department) (rocketchat_omnichannel_department_agents"
                    f'{{status="available", {DEP}}})',
                    "{{server}} {{department}} available",
                    "A",
                ),
                target(
                    "max by (server, department) "
                    f"(rocketchat_omnichannel_department_required_agents{{{DEP}}})",
                    "{{server}} {{department}} required",
                    "B",
                ),
            ],
            overrides=[dashed(".* required", {"id": "custom.fillOpacity", "value": 0})],
            min=0,
            decimals=0,
        ),
        12,
        9,
    )
    lay.add(
        timeseries(
            "Open chats and slots per department",
            "Open chats served by each department's available agents, and their chat slots"
            " (dashed)." + NEEDS_DEPARTMENTS,
            "none",
            [
                target(
                    "max by (server, department) "
                    f"(rocketchat_omnichannel_department_open_chats{{{DEP}}})",
                    "{{server}} {{department}} open",
                    "A",
                ),
                target(
                    "max by (server, department) "
                    f"(rocketchat_omnichannel_department_chat_slots{{{DEP}}})",
                    "{{server}} {{department}} slots",
                    "B",
                ),
            ],
            overrides=[dashed(".* slots", {"id": "custom.fillOpacity", "value": 0})],
            min=0,
            decimals=0,
        ),
        12,
        9,
    )


def staffing_dashboard() -> Json:
    lay = Layout()
    staffing_now(lay)
    queue_and_departments(lay)
    staffing_windows(lay)
    staffing_agents(lay)
    exporter_health(lay)
    return dashboard(
        STAFFING_UID,
        "Rocket.Chat Omnichannel / Staffing",
        "Omnichannel agents available now against the staffing schedule, staffing per window,"
        " agents ranked by availability, and the exporter's health.",
        [*COMMON_VARIABLES, WINDOW_VARIABLE, DEPARTMENT_VARIABLE],
        lay.panels,
    )


# ---- agent detail ------------------------------------------------------------------------------

AGENT_VARIABLE = query_variable(
    "agent",
    "Agent",
    'label_values(rocketchat_omnichannel_agent_available_seconds{job=~"$job", server=~"$server"},'
    " agent)",
    include_all=False,  # "All" would draw hundreds of agents; pick a few instead
)


def agent_now(lay: Layout) -> None:
    lay.row("Now")
    lay.add(
        stat(
            "Available now",
            "Whether the agent is available for service right now (omnichannel status"
            " 'available' and presence not offline). Empty when the exporter may not read the"
            " per-agent list (it then only has the agents-status chart's counts).",
            "none",
            [
                target(
                    f"max by (server, agent) (rocketchat_omnichannel_agent_available{{{AGT}}})",
                    "{{agent}}",
                )
            ],
            mappings=value_map(**{"0": ("Not available", "red"), "1": ("Available", "green")}),
            thresholds=thresholds((None, "red"), (1, "green")),
        ),
        8,
        5,
    )
    lay.add(
        stat(
            "Open session",
            "Length of the agent's current availability session, as observed by the exporter"
            " (0 when not available). Rocket.Chat only records a session once it closes.",
            "s",
            [
                target(
                    "max by (server, agent) "
                    f"(rocketchat_omnichannel_agent_open_session_seconds{{{AGT}}})",
                    "{{agent}}",
                )
            ],
            thresholds=thresholds((None, "blue")),
        ),
        8,
        5,
    )
    lay.add(
        stat(
            "Last available",
            "When the agent's latest closed availability session ended. While the agent is"
            " available now, see the open session instead.",
            "dateTimeFromNow",
            [
                target(
                    "1000 * max by (server, agent) "
                    f"(rocketchat_omnichannel_agent_last_available_timestamp_seconds{{{AGT}}})",
                    "{{agent}}",
                )
            ],
            thresholds=thresholds((None, "blue")),
        ),
        8,
        5,
    )
    lay.add(
        panel(
            "state-timeline",
            "Live status over time",
            "Available (green) or not (red) at each scrape, per agent.",
            "none",
            [
                target(
                    f"max by (server, agent) (rocketchat_omnichannel_agent_available{{{AGT}}})",
                    "{{agent}}",
                )
            ],
            options={
                "showValue": "never",
                "mergeValues": True,
                "rowHeight": 0.8,
                "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                "tooltip": {"mode": "single", "sort": "none"},
            },
            defaults={
                "color": {"mode": "thresholds"},
                "mappings": value_map(
                    **{"0": ("Not available", "red"), "1": ("Available", "green")}
                ),
                "thresholds": thresholds((None, "red"), (1, "green")),
            },
        ),
        24,
        6,
    )
    lay.add(
        timeseries(
            "Open session length",
            "Length of the current availability session over time: a saw-tooth that drops to"
            " 0 when the agent stops being available.",
            "s",
            [
                target(
                    "max by (server, agent) "
                    f"(rocketchat_omnichannel_agent_open_session_seconds{{{AGT}}})",
                    "{{agent}}",
                )
            ],
            min=0,
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Availability ratio over time",
            "Share of each window the agent was available for service, as it evolves.",
            "percentunit",
            [
                target(
                    "max by (server, agent, window) "
                    f"(rocketchat_omnichannel_agent_available_ratio{{{AGT_WIN}}})",
                    "{{agent}} {{window}}",
                )
            ],
            min=0,
            max=1,
        ),
        12,
        8,
    )


def agent_windows(lay: Layout) -> None:
    lay.row("Per window")
    for metric, title, description, unit, extra in (
        (
            "available_ratio",
            "Availability per window",
            "Share of each window the agent was available for service (available seconds"
            " divided by the window's elapsed length).",
            "percentunit",
            {"max": 1, "thresholds": thresholds((None, "red"), (0.5, "orange"), (0.8, "green"))},
        ),
        (
            "available_seconds",
            "Available time per window",
            "Seconds the agent was available for service within each window: closed sessions"
            " from Rocket.Chat's history plus, unless disabled, the open session.",
            "s",
            {"thresholds": thresholds((None, "blue"))},
        ),
        (
            "service_intervals",
            "Availability intervals per window",
            "Separate availability sessions in each window (after merging duplicates and"
            " overlaps). Many short intervals suggest a flapping connection or status.",
            "none",
            {"thresholds": thresholds((None, "blue"))},
        ),
    ):
        lay.add(
            bargauge(
                title,
                description,
                unit,
                [
                    target(
                        "max by (server, agent, window) "
                        f"(rocketchat_omnichannel_agent_{metric}{{{AGT_WIN}}})",
                        "{{agent}} {{window}}",
                    )
                ],
                **extra,
            ),
            8,
            8,
        )


def agent_reported(lay: Layout) -> None:
    lay.row("Rocket.Chat's reported time vs computed time")
    reported = (
        "max by (server, agent, window) "
        f"(rocketchat_omnichannel_agent_reported_available_seconds{{{AGT}}})"
    )
    computed_all = (
        f"max by (server, agent, window) (rocketchat_omnichannel_agent_available_seconds{{{AGT}}})"
    )
    # Only the windows Rocket.Chat reports on (calendar days); `-` already matches windows.
    computed = f"{computed_all}\nand on (server, agent, window)\n{reported}"
    why = (
        " They differ when the agent is available now (Rocket.Chat counts a session only"
        " once it closes), when Rocket.Chat recorded a session twice (the exporter merges"
        " duplicates) or lost time on a presence change. A day credited ~86,399 s points at"
        " a session business-hour automation left open."
    )
    lay.add(
        table(
            "Reported vs computed available time",
            "Rocket.Chat's own availableTimeInSeconds for the calendar-day windows (today,"
            " yesterday) next to the exporter's time computed from the sessions." + why,
            "s",
            [
                target(reported, ref="A", table=True),
                target(computed, ref="B", table=True),
                target(f"{reported}\n-\n{computed_all}", ref="C", table=True),
            ],
            {
                "server": "Server",
                "agent": "Agent",
                "window": "Window",
                "Value #A": "Reported by Rocket.Chat",
                "Value #B": "Computed by the exporter",
                "Value #C": "Difference",
            },
            sort_by="Difference",
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Reported vs computed over time",
            "Rocket.Chat's reported available seconds (dashed) and the exporter's computed"
            " seconds for the calendar-day windows." + why,
            "s",
            [
                target(reported, "{{agent}} {{window}} reported", "A"),
                target(computed, "{{agent}} {{window}} computed", "B"),
            ],
            overrides=[dashed(".* reported")],
            min=0,
        ),
        12,
        8,
    )


def agent_dashboard() -> Json:
    lay = Layout()
    agent_now(lay)
    agent_windows(lay)
    agent_reported(lay)
    return dashboard(
        AGENT_UID,
        "Rocket.Chat Omnichannel / Agent",
        "One or a few Omnichannel agents: live status, availability per window, sessions, and"
        " Rocket.Chat's own reported time next to the exporter's.",
        [*COMMON_VARIABLES, AGENT_VARIABLE, WINDOW_VARIABLE],
        lay.panels,
    )


# ---- output ------------------------------------------------------------------------------------

DASHBOARDS = {
    "rocketchat-omnichannel-staffing.json": staffing_dashboard,
    "rocketchat-omnichannel-agent.json": agent_dashboard,
}


def render(build: Any) -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def rendered() -> dict[str, str]:
    """File name -> JSON text, exactly as committed."""
    return {name: render(build) for name, build in DASHBOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if the JSON is out of date")
    args = parser.parse_args(argv)
    stale = []
    for name, text in rendered().items():
        path = OUT_DIR / name
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(name)
        if not args.check:
            OUT_DIR.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if args.check and stale:
        print(f"out of date, run python grafana/generate.py: {', '.join(stale)}", file=sys.stderr)
        return 1
    for name in stale:
        print(f"wrote {OUT_DIR / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
