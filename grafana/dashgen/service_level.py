"""The service-level row of the staffing dashboard (only with `service_level` on in the
exporter's config: histograms of closed chats, docs/service-level.md)."""

from __future__ import annotations

from .queue import DEP
from .toolkit import SRV, Layout, dashed, target, timeseries

NEEDS_SERVICE_LEVEL = (
    " Needs `service_level` in the exporter's config (docs/service-level.md); chats count when"
    " they close, so a window shows the chats closed in it. No data: no chat closed."
)
WAIT = "rocketchat_omnichannel_chat_queue_wait_seconds"


def service_level(lay: Layout) -> None:
    lay.row("Service level (closed chats)")
    lay.add(
        timeseries(
            "Service level (1 h)",
            "Share of the chats closed in the last hour that an agent took within 60 s (the"
            ' le="60" bucket; service_level.target_seconds must be a bucket bound). Dashed: the'
            " configured target." + NEEDS_SERVICE_LEVEL,
            "percentunit",
            [
                target(
                    f'sum by (server, department) (rate({WAIT}_bucket{{le="60", {DEP}}}[1h]))'
                    f" / sum by (server, department) (rate({WAIT}_count{{{DEP}}}[1h]))",
                    "{{server}} {{department}}",
                    "A",
                ),
                target(
                    f"max by (server) (rocketchat_omnichannel_service_level_target_ratio{{{SRV}}})",
                    "{{server}} target",
                    "B",
                ),
            ],
            overrides=[dashed(".* target", {"id": "custom.fillOpacity", "value": 0})],
            min=0,
            max=1,
        ),
        12,
        9,
    )
    lay.add(
        timeseries(
            "Speed of answer (time in queue, p50 and p90 over 1 h)",
            "Time closed chats waited before an agent took them (servedBy.ts - ts), as"
            " percentiles estimated from the histogram buckets." + NEEDS_SERVICE_LEVEL,
            "s",
            [
                target(
                    f"histogram_quantile({q}, sum by (server, department, le) "
                    f"(rate({WAIT}_bucket{{{DEP}}}[1h])))",
                    f"{{{{server}}}} {{{{department}}}} p{round(q * 100)}",
                    ref,
                )
                for q, ref in ((0.5, "A"), (0.9, "B"))
            ],
            min=0,
        ),
        12,
        9,
    )
    lay.add(
        timeseries(
            "Abandoned in queue (per hour)",
            "Chats closed in the last hour before any agent took them (no servedBy), and all"
            " chats closed (dashed)." + NEEDS_SERVICE_LEVEL,
            "none",
            [
                target(
                    "sum by (server, department) "
                    f"(increase(rocketchat_omnichannel_chats_abandoned_total{{{DEP}}}[1h]))",
                    "{{server}} {{department}} abandoned",
                    "A",
                ),
                target(
                    "sum by (server, department) "
                    f"(increase(rocketchat_omnichannel_chats_closed_total{{{DEP}}}[1h]))",
                    "{{server}} {{department}} closed",
                    "B",
                ),
            ],
            overrides=[dashed(".* closed", {"id": "custom.fillOpacity", "value": 0})],
            min=0,
        ),
        12,
        9,
    )
    lay.add(
        timeseries(
            "First response time (p90 over 1 h)",
            "Closed chats' first response time (Rocket.Chat's metrics.response.ft: the"
            " visitor's first message to the agent's first reply)." + NEEDS_SERVICE_LEVEL,
            "s",
            [
                target(
                    "histogram_quantile(0.9, sum by (server, department, le) (rate("
                    f"rocketchat_omnichannel_chat_first_response_seconds_bucket{{{DEP}}}[1h])))",
                    "{{server}} {{department}} p90",
                )
            ],
            min=0,
        ),
        12,
        9,
    )
