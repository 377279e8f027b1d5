"""Per-route pacing from Rocket.Chat's rate-limit headers. Pure: `now` is always a parameter.

Rocket.Chat (Meteor's rate limiter) counts calls per route in fixed windows (default 10 calls
per 60 s) and reports `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`
(epoch milliseconds, when the current window ends). In a fixed window, spreading calls out
does not earn any extra calls; what avoids a 429 is not calling once `Remaining` is 0 until the
window resets. So the pacer lets calls through while budget is left, holds the next call until
the reset when it is spent, and learns limit/window so the poller can stretch its interval to
what one poll needs (`min_interval`). Users with `api-bypass-rate-limit` get no headers: no
pacing at all.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

# Rocket.Chat compares against its own clock and rounds; a little slack avoids a 429 right
# at the boundary.
RESET_MARGIN_SECONDS = 0.25
# Never wait longer than this for one call, whatever a header says (broken header, skew).
MAX_WAIT_SECONDS = 600.0
# When a 429 says nothing usable about when to come back.
DEFAULT_429_WAIT_SECONDS = 30.0

_WAIT_TEXT = re.compile(r"wait\s+(\d+(?:\.\d+)?)\s*second", re.IGNORECASE)


@dataclass(slots=True)
class RouteBudget:
    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None  # unix seconds when the window ends
    window: float = 0.0  # longest time-to-reset seen: a good estimate of the window length


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return int(float(raw.strip()))
    except (ValueError, OverflowError):
        return None


def reset_time(raw: int | float, now: float) -> float:
    """X-RateLimit-Reset as unix seconds: epoch ms (Rocket.Chat), epoch s, or seconds from now."""
    if raw > 1e11:
        return raw / 1000.0
    if raw > 1e9:
        return float(raw)
    return now + raw


class RateLimiter:
    """Rate-limit state per route (the exporter's endpoint names: history, agents, ...)."""

    def __init__(self) -> None:
        self._routes: dict[str, RouteBudget] = {}

    def observe(self, route: str, headers: Mapping[str, str], now: float) -> None:
        """Learn from one answer's headers; an answer without them means no limit applies."""
        limit = _int_header(headers, "x-ratelimit-limit")
        remaining = _int_header(headers, "x-ratelimit-remaining")
        reset_raw = _int_header(headers, "x-ratelimit-reset")
        if limit is None and remaining is None and reset_raw is None:
            self._routes.pop(route, None)
            return
        budget = self._routes.setdefault(route, RouteBudget())
        budget.limit = limit if limit and limit > 0 else budget.limit
        budget.remaining = remaining
        if reset_raw is not None:
            budget.reset = reset_time(reset_raw, now)
            until = budget.reset - now
            if 0 < until <= MAX_WAIT_SECONDS:
                budget.window = max(budget.window, until)

    def exhausted(self, route: str) -> None:
        """A 429 arrived: whatever the headers said, no budget is left until the reset."""
        budget = self._routes.setdefault(route, RouteBudget())
        budget.remaining = 0

    def delay(self, route: str, now: float) -> float:
        """Seconds to wait before the next call on `route` (0 when it may go now)."""
        budget = self._routes.get(route)
        if budget is None or budget.remaining is None or budget.remaining > 0:
            return 0.0
        if budget.reset is None:
            return 0.0
        # Rocket.Chat starts the next window only once its clock is past the reset (not at
        # it), so the margin applies up to the reset's own instant too.
        wait = budget.reset - now + RESET_MARGIN_SECONDS
        return min(wait, MAX_WAIT_SECONDS) if wait > 0 else 0.0

    def budget(self, route: str) -> RouteBudget | None:
        return self._routes.get(route)

    def min_interval(self, route: str, calls: int) -> float:
        """Shortest poll interval at which `calls` per poll on `route` fit the learned budget.

        With a fixed window W and limit L, L // calls whole polls fit in one window; a poll
        needing more than L calls spans ceil(calls / L) windows.
        """
        budget = self._routes.get(route)
        if budget is None or not budget.limit or budget.window <= 0 or calls <= 0:
            return 0.0
        if calls <= budget.limit:
            return budget.window / (budget.limit // calls)
        return budget.window * math.ceil(calls / budget.limit)


def retry_after_429(headers: Mapping[str, str], body_text: str, now: float) -> float:
    """How long a 429 asks us to wait: X-RateLimit-Reset, then Retry-After, then the body."""
    reset_raw = _int_header(headers, "x-ratelimit-reset")
    if reset_raw is not None:
        until = reset_time(reset_raw, now) - now
        if until > 0:
            return min(until + RESET_MARGIN_SECONDS, MAX_WAIT_SECONDS)
    retry_after = headers.get("retry-after")
    if retry_after:
        wait = _retry_after_seconds(retry_after.strip(), now)
        if wait is not None:
            return min(wait, MAX_WAIT_SECONDS)
    match = _WAIT_TEXT.search(body_text)
    if match:
        return min(float(match.group(1)) + RESET_MARGIN_SECONDS, MAX_WAIT_SECONDS)
    return DEFAULT_429_WAIT_SECONDS


def _retry_after_seconds(value: str, now: float) -> float | None:
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
