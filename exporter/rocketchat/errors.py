"""The Rocket.Chat routes the exporter reads, and how their failures are named and explained.

Every failure leaves the client as a `RocketChatError` with a fixed `reason` (the
`poll_errors_total` label) and a message that says what Rocket.Chat said and how to fix it.
"""

from __future__ import annotations

ROUTES = {
    "history": "/api/v1/livechat/analytics/agents/available-for-service-history",
    "agents": "/api/v1/livechat/users/agent",
    "agents_status": "/api/v1/livechat/analytics/dashboards/charts/agents-status",
    "info": "/api/info",
    # Only with `departments` on (exporter/rocketchat/omnichannel.py):
    "departments": "/api/v1/livechat/department",
    "inquiries": "/api/v1/livechat/inquiries.list",
    "load": "/api/v1/livechat/queue",
    # Only with `service_level` on (exporter/servicelevel_feed.py):
    "rooms": "/api/v1/livechat/rooms",
}
REASONS = (
    "auth",
    "permission",
    "licence",
    "rate_limited",
    "server_error",
    "network",
    "invalid_response",
    "pagination",
)

_MANAGER = (
    "permission view-livechat-manager missing",
    "give the exporter's user a role with view-livechat-manager "
    "(livechat-monitor is the least privileged built-in one)",
)
# Per route: (what is missing, how to fix it) for a 403.
PERMISSION_FIX = {
    "history": _MANAGER,
    "agents_status": _MANAGER,
    "agents": (
        "permission to list agents missing",
        "grant manage-livechat-agents (older servers) or transfer-livechat-guest / "
        "edit-omnichannel-contact (newer servers) to the exporter's user",
    ),
    "info": ("access denied", "check that url points at Rocket.Chat"),
    "departments": (
        "permission view-livechat-departments (or view-l-room) missing",
        "give the exporter's user livechat-manager, or a role with view-livechat-departments",
    ),
    "inquiries": _MANAGER,
    "load": (
        "permission view-l-room missing",
        "give the exporter's user livechat-manager, or a role with view-l-room",
    ),
    "rooms": (
        "permission view-livechat-rooms missing",
        "give the exporter's user livechat-manager (a livechat-monitor sees only its units' "
        "rooms), or a role with view-livechat-rooms",
    ),
}


class RocketChatError(Exception):
    """A request to Rocket.Chat failed; `reason` is one of REASONS, `status` the HTTP status."""

    def __init__(self, reason: str, message: str, status: int | None = None):
        assert reason in REASONS, reason
        super().__init__(message)
        self.reason = reason
        self.status = status


class Stopped(Exception):
    """The stop event was set while waiting: the poll is abandoned, not failed.

    Deliberately not a RocketChatError: shutting down is nobody's failure, and a handler of
    Rocket.Chat's errors must not swallow it by accident.
    """

    def __init__(self) -> None:
        super().__init__("stopped while waiting (shutdown)")


def describe(
    endpoint: str, problem: str, fix: str, status: int | None, said: str | None = None
) -> str:
    """`GET <route>: <problem> (HTTP <status>, Rocket.Chat said: "<said>"); fix: <fix>`."""
    where = f"HTTP {status}, " if status is not None else ""
    quoted = f' ({where}Rocket.Chat said: "{said}")' if said is not None else ""
    return f"GET {ROUTES[endpoint]}: {problem}{quoted}; fix: {fix}"
