"""The queue and departments row of the staffing dashboard (only with `departments` on in the
exporter's config)."""

from __future__ import annotations

from .toolkit import (
    SRV,
    Layout,
    bargauge,
    dashed,
    query_variable,
    stat,
    target,
    thresholds,
    timeseries,
)

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
