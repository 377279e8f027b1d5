"""The scenarios: agent counts and the fixed settings every size shares."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class Size:
    name: str
    agents: int
    per_agent: bool = True  # False: team series only (agents.per_agent: false)


SIZES = {
    "S": Size("S", 50),
    "M": Size("M", 500),
    "L": Size("L", 5_000),
    "XL": Size("XL", 20_000),
}
DEFAULT_SIZES = ("S", "M", "L", "XL")

WINDOWS = ("1h", "8h", "24h", "7d", "today")
POLL_INTERVAL = 60.0  # seconds, the exporter's default
HISTORY_DAYS = 7  # simulated days of history before the start day
INTERVALS_PER_DAY = 12  # simulated sessions per agent per working day (shifts with breaks)
SEED = 1
TIMEZONE = "UTC"
RATE_LIMIT = 10  # Rocket.Chat's default: 10 calls per 60 s per route and client
RATE_WINDOW = 60.0
# A fixed instant (Wednesday 14:00 UTC) keeps runs comparable: today is half worked.
START = datetime(2026, 11, 18, 14, 0, tzinfo=UTC).timestamp()
SERVER = "bench"
