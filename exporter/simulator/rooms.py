"""Livechat rooms, as GET /api/v1/livechat/rooms serves them (service level).

Filter semantics from Rocket.Chat's source (`apps/meteor/app/livechat/imports/server/rest/
rooms.ts`, `LivechatRooms.findRoomsWithCriteria` in packages/models):

- `closedAt` / `createdAt`: JSON `{"start","end"}` (either optional) parsed with Date.parse; a
  value that is not JSON, or a bound that is not a date, is a 400 (`The "closedAt.start" query
  parameter must be a valid date.`). They become `closedAt: {$gte: start, $lte: end}` (both
  inclusive; `ts` for createdAt). Open rooms have no closedAt, so any closedAt filter drops them.
- `departmentId` (7.10.0 also a list): `{departmentId: {$in: [...]}}`.
- `open` (`true`/`false` only; other values are ignored): open rooms (`open` set, not on hold,
  served) or closed ones.
- `sort` (parseJsonQuery), default `{ts: -1}`; count/offset as everywhere.
- `fields` is accepted and ignored: whole documents come back, visitor data (`v`), the room
  name (`fname`), the last message (`lastMessage.msg`) included.

Scripted through `Simulator.rooms` (tests: `add`) or generated (`generate`: rooms that close
as the clock passes, with waits, replies and abandonments from the seed).
"""

from __future__ import annotations

import functools
import json
import random
import threading
from dataclasses import dataclass, field
from typing import Any

from . import protocol as P

ROUTE_ROOMS = "rooms"
PATHS = {"/api/v1/livechat/rooms": ROUTE_ROOMS}

_STRINGS = (
    "count",
    "offset",
    "sort",
    "query",
    "fields",
    "createdAt",
    "customFields",
    "closedAt",
    "roomName",
    "open",
    "onhold",
    "queued",
)
_KINDS = {name: "number" if name in ("count", "offset") else "string" for name in _STRINGS}
# isGETLivechatRoomsParams: 7.0.0 and 7.10.0 differ in departmentId and units.
SCHEMAS = {
    "7.0.0": P.QuerySchema(
        {**_KINDS, "agents": "array", "tags": "array", "departmentId": "string"},
        nullable=frozenset({*_STRINGS, "agents", "tags", "departmentId"}),
    ),
    "7.10.0": P.QuerySchema(
        {
            **_KINDS,
            "agents": "array",
            "tags": "array",
            "departmentId": "string|array",
            "units": "array",
        },
        nullable=frozenset({*_STRINGS, "agents", "tags", "units"}),
    ),
}


@dataclass
class SimRoom:
    id: str
    ts_ms: int
    department: str | None = None
    served_ms: int | None = None  # servedBy.ts; None: never taken
    first_response: float | None = None  # metrics.response.ft, seconds
    closed_ms: int | None = None  # None: still open
    agent: str = "agent"

    def document(self) -> dict[str, Any]:
        """The whole room, as Rocket.Chat returns it (private parts included, on purpose: the
        exporter must drop them)."""
        doc: dict[str, Any] = {
            "_id": self.id,
            "t": "l",
            "ts": _iso(self.ts_ms),
            "fname": f"Visitor {self.id} secret-room-name",
            "v": {
                "_id": f"v-{self.id}",
                "username": f"guest-{self.id}",
                "token": f"visitor-token-{self.id}",
                "name": "Jane Visitor",
                "visitorEmails": [{"address": f"jane.{self.id}@example.invalid"}],
                "phone": [{"phoneNumber": "+15550100"}],
            },
            "lastMessage": {"msg": f"my card number is 4111 {self.id} private-message-text"},
            "metrics": {},
            "usersCount": 2,
            "msgs": 4,
        }
        if self.department is not None:
            doc["departmentId"] = self.department
        if self.served_ms is not None:
            doc["servedBy"] = {"_id": f"u-{self.agent}", "username": self.agent}
            doc["servedBy"]["ts"] = _iso(self.served_ms)
        if self.first_response is not None:
            doc["metrics"]["response"] = {"ft": self.first_response, "avg": self.first_response}
            doc["metrics"]["reaction"] = {"ft": self.first_response}
        if self.closed_ms is None:
            doc["open"] = True
        else:
            doc["closedAt"] = _iso(self.closed_ms)
            doc["metrics"]["chatDuration"] = (self.closed_ms - self.ts_ms) / 1000
        return doc


def _iso(ms: int) -> str:
    import time

    s, r = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + f".{r:03d}Z"


class BadQuery(ValueError):
    """A query Rocket.Chat answers with 400 `{success: false, error}`."""


def _date_range(q: dict[str, Any], name: str, zone: P.Zone) -> tuple[float | None, float | None]:
    raw = q.get(name)
    if not raw:
        return None, None
    try:
        obj = json.loads(raw)
    except ValueError:
        raise BadQuery(f"Unexpected token in JSON: {name}") from None
    bounds: list[float | None] = []
    for part in ("start", "end"):
        text = obj.get(part) if isinstance(obj, dict) else None
        if not text:
            bounds.append(None)
            continue
        parsed = P.parse_js_date(text, zone) if isinstance(text, str) else None
        if parsed is None:
            raise BadQuery(f'The "{name}.{part}" query parameter must be a valid date.')
        bounds.append(parsed.ms)
    return bounds[0], bounds[1]


def _within(value: int | None, bounds: tuple[float | None, float | None]) -> bool:
    start, end = bounds
    if start is None and end is None:
        return True
    if value is None:
        return False
    return (start is None or value >= start) and (end is None or value <= end)


@dataclass
class RoomsState:
    """Thread-safe by its own lock; generated rooms are visible once their clock time comes."""

    rooms: list[SimRoom] = field(default_factory=list)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _ids: int = 0

    def add(
        self,
        ts: float,
        *,
        department: str | None = None,
        wait: float | None = None,
        first_response: float | None = None,
        duration: float | None = None,
    ) -> str:
        """A room created at `ts` (unix s), taken after `wait` s (None: abandoned), closed
        `duration` s after creation (None: still open)."""
        with self._lock:
            self._ids += 1
            room = SimRoom(
                id=f"r{self._ids}",
                ts_ms=round(ts * 1000),
                department=department,
                served_ms=None if wait is None else round((ts + wait) * 1000),
                first_response=first_response,
                closed_ms=None if duration is None else round((ts + duration) * 1000),
            )
            self.rooms.append(room)
            return room.id

    def generate(
        self, start: float, end: float, departments: list[str | None], seed: int, every: float = 20
    ) -> None:
        """A room every `every` s on average over [start, end]: waits mostly short with a long
        tail, one in eight abandoned after waiting, replies 5-120 s, chats 2-40 min."""
        rng = random.Random(f"rooms:{seed}")
        t = start
        while t < end:
            t += rng.expovariate(1 / every)
            dep = rng.choice(departments) if departments else None
            wait = min(rng.expovariate(1 / 45), 1700.0)
            if rng.random() < 0.125:
                self.add(t, department=dep, wait=None, duration=wait + rng.uniform(30, 600))
            else:
                reply = rng.uniform(5, 120)
                self.add(
                    t,
                    department=dep,
                    wait=wait,
                    first_response=reply,
                    duration=wait + reply + rng.uniform(120, 2400),
                )

    def body(
        self, q: dict[str, Any], page: tuple[int, int], sort: list, now_ms: int, zone: P.Zone
    ) -> dict:
        closed = _date_range(q, "closedAt", zone)
        created = _date_range(q, "createdAt", zone)
        deps = q.get("departmentId")
        wanted = None if not deps or deps == "undefined" else set(_as_list(deps))
        open_ = q.get("open")
        with self._lock:
            # A room exists once created; it shows as closed once its closing time has come.
            rooms = [r for r in self.rooms if r.ts_ms <= now_ms]
        out = []
        for r in rooms:
            closed_ms = r.closed_ms if r.closed_ms is not None and r.closed_ms <= now_ms else None
            served_ms = r.served_ms if r.served_ms is not None and r.served_ms <= now_ms else None
            if not _within(closed_ms, closed) or not _within(r.ts_ms, created):
                continue
            if wanted is not None and r.department not in wanted:
                continue
            if open_ in ("true", "false"):
                is_open = closed_ms is None
                if open_ == "true" and not (is_open and served_ms is not None):
                    continue
                if open_ == "false" and is_open:
                    continue
            shown = SimRoom(r.id, r.ts_ms, r.department, served_ms, r.first_response, closed_ms)
            if closed_ms is None:
                shown.first_response = r.first_response if served_ms is not None else None
            out.append(shown)
        keys = sort or [("ts", -1)]
        for key, direction in reversed(keys):  # stable sorts: the first key decides last
            out.sort(key=functools.partial(_sort_value, key=key), reverse=direction < 0)
        offset, count = page
        chosen = out[offset:] if offset else out
        if count:
            chosen = chosen[:count]
        docs = [r.document() for r in chosen]
        return {"rooms": docs, "count": len(docs), "offset": offset, "total": len(out)}


def _as_list(value: str | list[str]) -> list[str]:
    return value if isinstance(value, list) else [value]


def _sort_value(room: SimRoom, *, key: str) -> tuple:
    value = {"ts": room.ts_ms, "closedAt": room.closed_ms, "_id": room.id}.get(key)
    return (value is not None, value or 0, room.id)
