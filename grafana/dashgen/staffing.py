"""The staffing overview dashboard: agents now against the schedule, per window, ranked, and
the exporter's health."""

from __future__ import annotations

from .queue import DEPARTMENT_VARIABLE, queue_and_departments
from .service_level import service_level
from .toolkit import (
    AGENT_UID,
    COMMON_VARIABLES,
    SRV,
    STAFFING_UID,
    WIN,
    WINDOW_VARIABLE,
    Json,
    Layout,
    bargauge,
    cache_fill,
    dashboard,
    dashed,
    stat,
    table,
    target,
    thresholds,
    timeseries,
    unit_override,
    value_map,
)

AVAILABLE = f'max by (server) (rocketchat_omnichannel_agents{{status="available", {SRV}}})'
REQUIRED = f"max by (server) (rocketchat_omnichannel_required_agents{{{SRV}}})"
NO_SCHEDULE = " No data means no staffing schedule is configured for the server."
AVAILABLE_MEANS = (
    " Available = omnichannel status 'available' and presence online, as Rocket.Chat's"
    " agents-status chart counts them (away and busy agents are counted separately)."
)


def staffing_now(lay: Layout) -> None:
    lay.row("Staffing now")
    lay.add(cache_fill(), 4, 5)
    lay.add(
        stat(
            "Available agents",
            "Agents available for service right now, per server." + AVAILABLE_MEANS,
            "none",
            [target(AVAILABLE, "{{server}}")],
            thresholds=thresholds((None, "red"), (1, "green")),
        ),
        5,
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
        5,
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
        5,
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
        5,
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
            "Agents Rocket.Chat counted but did not return (its page size limit) on a day the"
            " selected windows cover, the most over those windows: their history is missing."
            " Today can be complete while past days are not. Raise 'Default Count' and 'Upper"
            " Count Limit' in Rocket.Chat's REST API settings above the number of agents.",
            "none",
            [
                target(
                    f"max by (server) (rocketchat_omnichannel_window_agents_missing{{{WIN}}})",
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


def staffing_dashboard() -> Json:
    lay = Layout()
    staffing_now(lay)
    queue_and_departments(lay)
    service_level(lay)
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
