"""Panel, query and dashboard builders shared by the dashboards (standard library only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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


def stat(
    title: str,
    description: str,
    unit: str,
    targets: list[Json],
    *,
    overrides: list[Json] | None = None,
    **defaults: Any,
) -> Json:
    return panel(
        "stat",
        title,
        description,
        unit,
        targets,
        overrides=overrides,
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


# ---- shared panels ---------------------------------------------------------------------------


def cache_fill() -> Json:
    """Progress of the first fill: the only panel with numbers while the cache fills."""
    return stat(
        "Cache fill: done, ETA",
        "Progress of the exporter's first fill of its history cache (every day the longest"
        " window needs, one request per day and page within Rocket.Chat's rate limit), and the"
        " estimated time left at that rate. Until it reaches 100 % the window and staffing"
        " panels stay empty; at 5,000 agents the fill takes about half an hour. 100 % from"
        " then on (later polls fetch only today). If it does not move, see the NeverPolled"
        " alert in the runbook.",
        "percentunit",
        [
            target(
                f"max by (server) (rocketchat_omnichannel_fill_progress_ratio{{{SRV}}})",
                "{{server}} done",
                "A",
            ),
            target(
                f"max by (server) (rocketchat_omnichannel_fill_eta_seconds{{{SRV}}})",
                "{{server}} ETA",
                "B",
            ),
        ],
        overrides=[
            {
                "matcher": {"id": "byRegexp", "options": ".* ETA"},
                "properties": [
                    {"id": "unit", "value": "s"},
                    {"id": "thresholds", "value": thresholds((None, "blue"))},
                ],
            }
        ],
        thresholds=thresholds((None, "orange"), (1, "green")),
        min=0,
    )


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


# job and server come from series that exist from the exporter's first second: build_info (one
# per process) and server_info (one per configured server). `up` would not do: it is absent
# until a server's first poll, the initial fill, has finished (up to half an hour).
COMMON_VARIABLES = [
    datasource_variable(),
    query_variable("job", "Job", "label_values(rocketchat_omnichannel_exporter_build_info, job)"),
    query_variable(
        "server", "Server", 'label_values(rocketchat_omnichannel_server_info{job=~"$job"}, server)'
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
