"""Clocks the simulator reads its "now" from (unix seconds, float)."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...


class SystemClock:
    """Real time."""

    def now(self) -> float:
        return time.time()


def _to_seconds(t: float | datetime) -> float:
    if isinstance(t, datetime):
        if t.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime (tzinfo set), got a naive one")
        return t.timestamp()
    return float(t)


class ManualClock:
    """A clock that only moves when told to; safe to move from the test thread while the
    server thread reads it."""

    def __init__(self, t: float | datetime = 1_700_000_000.0):
        self._t = _to_seconds(t)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._t

    def set(self, t: float | datetime) -> None:
        with self._lock:
            self._t = _to_seconds(t)

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._t += seconds
            return self._t
