"""backfill's progress on stderr: a bar with ETA on a terminal, one plain line per day otherwise."""

from __future__ import annotations

import time
from datetime import date
from typing import TextIO


class Progress:
    """Days done of days to do, with an ETA from the days fetched so far."""

    def __init__(self, total: int, mode: str, stream: TextIO, clock=time.monotonic):
        self.total, self.done, self.fetched = total, 0, 0
        self.bar = mode == "bar" or (mode == "auto" and stream.isatty())
        self.off = mode == "off"
        self.stream, self.clock = stream, clock
        self.started = clock()
        self.note = ""

    def eta(self) -> float | None:
        if not self.fetched:
            return None
        return (self.clock() - self.started) / self.fetched * (self.total - self.done)

    def day(self, server: str, day: date, what: str, fetched: bool) -> None:
        self.done += 1
        self.fetched += fetched
        self.note = ""
        self._show(f"{server} {day.isoformat()} {what}")

    def waiting(self, seconds: float) -> None:
        if self.bar and seconds >= 1:
            self.note = f"waiting {seconds:.0f}s for Rocket.Chat's rate limit"
            self._show(self.note)

    def _show(self, what: str) -> None:
        if self.off:
            return
        eta = self.eta()
        left = "ETA " + (_duration(eta) if eta is not None else "?")
        if self.bar:
            width = 30
            filled = width * self.done // max(self.total, 1)
            pct = 100 * self.done // max(self.total, 1)
            line = f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} days "
            self.stream.write(f"{line}{pct:3d}% {left}  {what[:50]:<50}")
        else:
            self.stream.write(f"backfill: {self.done}/{self.total} days, {left}: {what}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.bar and not self.off:
            self.stream.write("\n")
            self.stream.flush()


def _duration(seconds: float) -> str:
    s = int(seconds + 0.5)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
