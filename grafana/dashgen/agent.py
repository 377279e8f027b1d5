"""The agent detail dashboard: one or a few agents' live status and availability per window."""

from __future__ import annotations

from .toolkit import (
    AGENT_UID,
    AGT,
    AGT_WIN,
    COMMON_VARIABLES,
    WINDOW_VARIABLE,
    Json,
    Layout,
    bargauge,
    cache_fill,
    dashboard,
    dashed,
    panel,
    query_variable,
    stat,
    table,
    target,
    thresholds,
    timeseries,
    value_map,
)

AGENT_VARIABLE = query_variable(
    "agent",
    "Agent",
    'label_values(rocketchat_omnichannel_agent_available_seconds{job=~"$job", server=~"$server"},'
    " agent)",
    include_all=False,  # "All" would draw hundreds of agents; pick a few instead
)


def agent_now(lay: Layout) -> None:
    lay.row("Now")
    lay.add(cache_fill(), 6, 5)
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
        6,
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
        6,
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
        6,
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
