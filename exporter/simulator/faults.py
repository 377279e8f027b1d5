"""Injected failures, switchable at runtime from any thread.

Transport faults (one per request, chosen before Rocket.Chat "sees" it, except where noted):
  error          5xx JSON answer (status `error_status`, default 500)
  html           502 HTML page, as a reverse proxy sends when Rocket.Chat is down
  drop           connection closed without any answer
  drop_mid_body  headers and half the body sent (Content-Length of the whole), then closed
                 (the request is processed and counted)
  truncate       complete HTTP answer whose JSON body is cut in half (processed and counted)

Schema drift of the history answer (persistent while enabled):
  missing_keys     every 5th agent lacks availableTimeInSeconds, every 5th (+2) lacks username
  null_stopped_at  the last serviceHistory entry of each agent has stoppedAt null
  naive_dates      dates without time zone ("2021-11-24T08:35:49.058")
  extra_fields     unknown keys on the page, the agents and the entries
  short_total      total smaller than the number of agents returned
  double_stop      each agent's first entry is repeated with the same startedAt and a later
                   stoppedAt, and its time is counted twice (Rocket.Chat's repeated-stop defect)
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

TRANSPORT_FAULTS = ("error", "html", "drop", "drop_mid_body", "truncate")
DRIFTS = (
    "missing_keys",
    "null_stopped_at",
    "naive_dates",
    "extra_fields",
    "short_total",
    "double_stop",
)


@dataclass(slots=True)
class _Shot:
    kind: str
    remaining: int
    route: str | None


class Faults:
    def __init__(self, seed: int = 0):
        self._lock = threading.Lock()
        self._rng = random.Random(f"faults:{seed}")
        self._shots: list[_Shot] = []
        self._rates: dict[tuple[str, str | None], float] = {}
        self._drift: frozenset[str] = frozenset()
        self._latency = 0.0
        self._error_status = 500

    # --- configuration ---
    @property
    def latency(self) -> float:
        return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("latency must be >= 0 seconds")
        self._latency = float(seconds)

    @property
    def error_status(self) -> int:
        return self._error_status

    @error_status.setter
    def error_status(self, status: int) -> None:
        if not 500 <= status <= 599:
            raise ValueError("error_status must be a 5xx code")
        self._error_status = status

    def inject(self, kind: str, times: int = 1, route: str | None = None) -> None:
        """The next `times` requests (to `route`, or to any route) get fault `kind`."""
        _check_kind(kind)
        with self._lock:
            self._shots.append(_Shot(kind, times, route))

    def set_rate(self, kind: str, probability: float, route: str | None = None) -> None:
        """Each request (to `route`, or any) gets fault `kind` with this probability."""
        _check_kind(kind)
        if not 0.0 <= probability <= 1.0:
            raise ValueError("probability must be within [0, 1]")
        with self._lock:
            if probability == 0:
                self._rates.pop((kind, route), None)
            else:
                self._rates[(kind, route)] = probability

    def set_drift(self, *kinds: str) -> None:
        """Enable exactly these schema drifts of the history answer (none: back to normal)."""
        for k in kinds:
            if k not in DRIFTS:
                raise ValueError(f"unknown drift {k!r}; choose from {', '.join(DRIFTS)}")
        with self._lock:
            self._drift = frozenset(kinds)

    @property
    def drift(self) -> frozenset[str]:
        return self._drift

    def clear(self) -> None:
        with self._lock:
            self._shots.clear()
            self._rates.clear()
            self._drift = frozenset()
            self._latency = 0.0
            self._error_status = 500

    # --- used by the server ---
    def take(self, route: str) -> str | None:
        with self._lock:
            for shot in self._shots:
                if shot.route is None or shot.route == route:
                    shot.remaining -= 1
                    if shot.remaining <= 0:
                        self._shots.remove(shot)
                    return shot.kind
            for (kind, r), p in self._rates.items():
                if (r is None or r == route) and self._rng.random() < p:
                    return kind
        return None


def _check_kind(kind: str) -> None:
    if kind not in TRANSPORT_FAULTS:
        raise ValueError(f"unknown fault {kind!r}; choose from {', '.join(TRANSPORT_FAULTS)}")
