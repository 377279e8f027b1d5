"""Closed chats for the service-level histograms, fetched without risking the availability poll.

One request per poll (livechat/rooms, count=0, `closedAt` from `overlap` before the newest
closed room seen, an indexed query), de-duplicated by room id (exporter/servicelevel.py). The
first successful fetch only marks what is already closed as seen: counters start at 0 when the
exporter starts (a counter reset, which `rate()` handles), and chats closed while it was not
running are not counted (docs/service-level.md).

A failed request (403 without view-livechat-rooms, 404, anything else) leaves the counters as
they are and marks the rooms part unknown for that poll; the next good request starts from the
same place, so nothing closed meanwhile is missed. The client logs one warning per failure
class.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from exporter.config.model import ServiceLevel
from exporter.model import ClosedRoom, Department
from exporter.rocketchat.errors import RocketChatError
from exporter.servicelevel import (
    Buckets,
    ServiceLevelSnapshot,
    Tally,
    record,
    seed,
    snapshot_of,
)

log = logging.getLogger("exporter.client")


@runtime_checkable
class RoomsClient(Protocol):
    def fetch_closed_rooms(self, since: float) -> tuple[ClosedRoom, ...]: ...

    @property
    def clock_skew(self) -> float: ...


class RoomsFeed:
    """One server's closed chats. Not thread-safe: the poller thread owns it."""

    def __init__(self, client: object, cfg: ServiceLevel):
        if not isinstance(client, RoomsClient):
            raise TypeError(f"{type(client).__name__} cannot fetch rooms")
        self._client = client
        self._cfg = cfg
        self.tally = Tally(
            Buckets(cfg.wait_buckets, cfg.response_buckets, cfg.duration_buckets),
            cfg.per_department,
            cfg.overlap,
        )
        self._seeded = False
        self._names: dict[str, str] = {}  # department id -> name, kept once learnt

    @classmethod
    def for_config(cls, client: object, cfg: ServiceLevel) -> RoomsFeed | None:
        return cls(client, cfg) if cfg.enabled else None

    def fetch(self, now: float, departments: Iterable[Department] | None = None) -> None:
        """Count the chats closed since the last poll; never raises RocketChatError."""
        for dep in departments or ():
            self._names[dep.id] = dep.name
        server_now = now - self._client.clock_skew
        try:
            rooms = self._client.fetch_closed_rooms(self.tally.since(server_now))
        except RocketChatError:
            self.known = False
            return
        self.known = True
        if not self._seeded:
            self._seeded = True
            self.tally = seed(self.tally, rooms, server_now, self._names)
        else:
            self.tally, _ = record(self.tally, rooms)

    known = False

    def snapshot(self) -> ServiceLevelSnapshot:
        return snapshot_of(
            self.tally, self.known, self._names, self._cfg.target_ratio, self._cfg.target_seconds
        )
