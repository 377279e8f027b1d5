"""Everything that talks to Rocket.Chat: routes, transport, paging, parsing, rate limits.

The poller sees only `Client` (the protocol below) and the errors; test fakes implement the
same protocol.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Protocol

from exporter.model import DayHistory, LiveStatus
from exporter.rocketchat.errors import REASONS, ROUTES, RocketChatError, Stopped


class Client(Protocol):
    """What the poller needs from a Rocket.Chat client."""

    @property
    def clock_skew(self) -> float: ...

    @property
    def min_poll_interval(self) -> float: ...

    def fetch_history_day(self, day: date) -> DayHistory: ...

    def fetch_live_status(self) -> LiveStatus: ...

    def fetch_info(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


__all__ = ["REASONS", "ROUTES", "Client", "RocketChatError", "Stopped"]
