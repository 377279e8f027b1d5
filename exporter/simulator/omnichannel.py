"""Departments, the inquiry queue and agent load, as Rocket.Chat's routes serve them.

- GET livechat/department (`isGETLivechatDepartmentProps`; view-livechat-departments or
  view-l-room): departments not archived unless showArchived=true; `enabled=true` keeps only
  enabled ones; `{departments, count, offset, total}`.
- GET livechat/inquiries.list (`isGETLivechatInquiriesListParams`; view-livechat-manager): only
  `status: queued`, projected to `_id, rid, name, ts, status, department`; `department` is an id
  or a name and an unknown one is ignored (the whole queue); default sort `{ts: -1}`.
- GET livechat/queue (`isGETLivechatQueueParams`; view-l-room): open, served chats grouped by
  agent and department, only agents online and available unless includeOfflineAgents=true;
  default sort `{chats: -1}`; `{queue: [{user, department, chats}], count, offset, total}`.

Scripted through `Simulator.omni` (tests): departments, memberships and limits, a queue that
fills (`enqueue`) and drains (`take`: the chat is served, `close`: it ends).
"""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from . import protocol as P

ROUTE_DEPARTMENTS = "departments"
ROUTE_INQUIRIES = "inquiries"
ROUTE_LOAD = "load"
PATHS = {
    "/api/v1/livechat/department": ROUTE_DEPARTMENTS,
    "/api/v1/livechat/inquiries.list": ROUTE_INQUIRIES,
    "/api/v1/livechat/queue": ROUTE_LOAD,
}

_PAGING = {"count": "number", "offset": "number", "sort": "string"}
_DEPARTMENT_PROPS = {
    "text": "string",
    "onlyMyDepartments": "enum:true,false",
    "enabled": "string",
    "excludeDepartmentId": "string",
    "showArchived": "string",
    **_PAGING,
    "query": "string",
}
SCHEMAS = {  # the same in 7.0.0 and 7.10.0 (tests/test_rest_schemas.py)
    ROUTE_DEPARTMENTS: P.QuerySchema(_DEPARTMENT_PROPS, nullable=frozenset(_DEPARTMENT_PROPS)),
    ROUTE_INQUIRIES: P.QuerySchema(
        {**_PAGING, "department": "string"},
        nullable=frozenset({*_PAGING, "department"}),
    ),
    ROUTE_LOAD: P.QuerySchema(
        {
            **_PAGING,
            "agentId": "string",
            "departmentId": "string",
            "includeOfflineAgents": "string",
        },
        nullable=frozenset({*_PAGING, "agentId", "departmentId", "includeOfflineAgents"}),
    ),
}


@dataclass
class SimDepartment:
    id: str
    name: str
    enabled: bool = True
    archived: bool = False
    max_chats: int = 0  # maxNumberSimultaneousChat (0: none)


@dataclass
class Inquiry:
    id: str
    rid: str
    ts_ms: int
    department: str | None


@dataclass
class OmnichannelState:
    """Thread-safe by its own lock; ids are deterministic (d1, d2, ... and i1, i2, ...)."""

    departments: dict[str, SimDepartment] = field(default_factory=dict)
    members: dict[str, set[str]] = field(default_factory=dict)  # username -> department ids
    limits: dict[str, int] = field(default_factory=dict)  # username -> maxNumberSimultaneousChat
    queue: list[Inquiry] = field(default_factory=list)
    chats: dict[tuple[str, str | None], int] = field(default_factory=dict)  # (user, dep) -> open
    generated: bool = False  # queue and load follow the clock (see `generate`)
    _usernames: list[str] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # ---- scripting --------------------------------------------------------------------------

    def add_department(
        self, name: str, *, id: str | None = None, max_chats: int = 0, enabled: bool = True
    ) -> str:
        with self._lock:
            dep_id = id or f"d{next(self._ids)}"
            self.departments[dep_id] = SimDepartment(dep_id, name, enabled, False, max_chats)
            return dep_id

    def generate(self, departments: int, usernames: list[str]) -> None:
        """`departments` departments "Department 1".."N"; agent i in department i mod N (every
        fifth also in the next one, a few in none); a queue and open chats that fill and drain
        with the clock: department k has (k + minute/2) mod 4 chats waiting, created 45 s
        apart, and each available agent serves (its index + minute/5) mod 3 chats."""
        with self._lock:
            ids = [self.add_department(f"Department {k + 1}") for k in range(departments)]
            for i, name in enumerate(usernames):
                if not ids or i % 7 == 6:
                    continue  # in no department
                self.assign(name, ids[i % len(ids)])
                if i % 5 == 0:
                    self.assign(name, ids[(i + 1) % len(ids)])
            self.generated = True
            self._usernames = list(usernames)

    def _queue_at(self, now_ms: int) -> list[Inquiry]:
        if not self.generated:
            return self.queue
        minute = now_ms // 60_000
        out = []
        for k, dep_id in enumerate(sorted(self.departments)):
            for j in range((k + minute // 2) % 4):
                ts = (minute * 60_000) - 30_000 - j * 45_000
                out.append(Inquiry(f"g{k}-{j}", f"rg{k}-{j}", ts, dep_id))
        out.append(Inquiry("g-none", "rg-none", minute * 60_000 - 10_000, None))
        return out

    def _chats_at(self, now_ms: int) -> dict[tuple[str, str | None], int]:
        if not self.generated:
            return self.chats
        step = now_ms // 300_000
        out: dict[tuple[str, str | None], int] = {}
        for i, name in enumerate(self._usernames):
            n = (i + step) % 3
            deps = sorted(self.members.get(name, ()))
            if n:
                out[(name, deps[0] if deps else None)] = n
        return out

    def rename_department(self, dep_id: str, name: str) -> None:
        with self._lock:
            self.departments[dep_id].name = name

    def remove_department(self, dep_id: str) -> None:
        """Deleted: gone from the list and from memberships (queued chats keep the id)."""
        with self._lock:
            del self.departments[dep_id]
            for ids in self.members.values():
                ids.discard(dep_id)

    def archive_department(self, dep_id: str) -> None:
        with self._lock:
            self.departments[dep_id].archived = True

    def assign(self, username: str, *dep_ids: str, max_chats: int | None = None) -> None:
        with self._lock:
            self.members.setdefault(username, set()).update(dep_ids)
            if max_chats is not None:
                self.limits[username] = max_chats

    def enqueue(self, ts: float, department: str | None = None) -> str:
        """A chat waiting since `ts` (unix seconds) for `department` (an id, or None)."""
        with self._lock:
            n = next(self._ids)
            self.queue.append(Inquiry(f"i{n}", f"r{n}", round(ts * 1000), department))
            return f"i{n}"

    def take(self, inquiry_id: str, username: str) -> None:
        """The agent takes the chat: out of the queue, one more open chat of that agent."""
        with self._lock:
            (inq,) = [q for q in self.queue if q.id == inquiry_id]
            self.queue.remove(inq)
            key = (username, inq.department)
            self.chats[key] = self.chats.get(key, 0) + 1

    def close(self, username: str, department: str | None = None) -> None:
        with self._lock:
            key = (username, department)
            self.chats[key] -= 1
            if not self.chats[key]:
                del self.chats[key]

    def user_fields(self, username: str) -> dict[str, Any]:
        """What EE's findAgentsWithDepartments adds to livechat/users/agent (when departments
        exist): `departments` (ids) and `livechat.maxNumberSimultaneousChat`."""
        with self._lock:
            if not self.departments:
                return {}
            out: dict[str, Any] = {"departments": sorted(self.members.get(username, ()))}
            if username in self.limits:
                out["livechat"] = {"maxNumberSimultaneousChat": self.limits[username]}
            return out

    # ---- routes -----------------------------------------------------------------------------

    def departments_body(self, q: dict[str, Any], page: tuple[int, int]) -> dict[str, Any]:
        with self._lock:
            deps = sorted(self.departments.values(), key=lambda d: d.name)
            show_archived = q.get("showArchived") == "true"
            deps = [d for d in deps if d.archived == show_archived]
            if q.get("enabled") == "true":
                deps = [d for d in deps if d.enabled]
            text = q.get("text")
            if text:
                deps = [d for d in deps if text.lower() in d.name.lower()]
            items = [
                {
                    "_id": d.id,
                    "name": d.name,
                    "enabled": d.enabled,
                    "archived": d.archived,
                    "numAgents": sum(d.id in ids for ids in self.members.values()),
                    "maxNumberSimultaneousChat": d.max_chats,
                    "showOnRegistration": True,
                    "showOnOfflineForm": True,
                    "type": "d",
                }
                for d in deps
            ]
        return _page("departments", items, page)

    def inquiries_body(
        self, q: dict[str, Any], page: tuple[int, int], sort: list, now_ms: int
    ) -> dict[str, Any]:
        with self._lock:
            wanted = q.get("department")
            dep = None
            if wanted:  # LivechatDepartment.findOneByIdOrName: unknown is ignored
                dep = next(
                    (d.id for d in self.departments.values() if wanted in (d.id, d.name)), None
                )
            queue = self._queue_at(now_ms)
            chosen = [i for i in queue if dep is None or i.department == dep]
            direction = dict(sort).get("ts", -1) if sort else -1
            chosen.sort(key=lambda i: (i.ts_ms, i.id), reverse=direction < 0)
            items = []
            for i in chosen:
                item: dict[str, Any] = {
                    "_id": i.id,
                    "rid": i.rid,
                    "name": f"guest-{i.rid}",
                    "ts": _iso(i.ts_ms),
                    "status": "queued",
                }
                if i.department is not None:
                    item["department"] = i.department
                items.append(item)
        return _page("inquiries", items, page)

    def load_body(
        self,
        q: dict[str, Any],
        page: tuple[int, int],
        live: dict[str, tuple[str, str, str]],
        now_ms: int,
    ) -> dict[str, Any]:
        """`live`: username -> (user id, presence, statusLivechat)."""
        include_offline = q.get("includeOfflineAgents") == "true"
        with self._lock:
            rows = []
            for (username, dep_id), chats in self._chats_at(now_ms).items():
                if username not in live or not chats:
                    continue
                uid, presence, livechat = live[username]
                if not include_offline and (presence == "offline" or livechat != "available"):
                    continue
                if q.get("departmentId") and dep_id != q["departmentId"]:
                    continue
                row: dict[str, Any] = {
                    "user": {"_id": uid, "username": username, "status": presence},
                    "chats": chats,
                }
                if dep_id is not None:
                    dep = self.departments.get(dep_id)
                    row["department"] = {"_id": dep_id, "name": dep.name if dep else dep_id}
                rows.append(row)
            rows.sort(key=lambda r: (-r["chats"], r["user"]["username"]))
        return _page("queue", rows, page)


def _page(key: str, items: list, page: tuple[int, int]) -> dict[str, Any]:
    offset, count = page
    chosen = items[offset:] if offset else items
    if count:
        chosen = chosen[:count]
    return {key: chosen, "count": len(chosen), "offset": offset, "total": len(items)}


def _iso(ms: int) -> str:
    import time

    s, r = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + f".{r:03d}Z"


def parse_sort(raw: str | None) -> list[tuple[str, int]]:
    """parseJsonQuery's sort: a JSON object; ValueError when it is not."""
    if not raw:
        return []
    obj = json.loads(raw)
    if not isinstance(obj, dict):
        raise ValueError(raw)
    return [(k, -1 if v in (-1, "-1", "desc") else 1) for k, v in obj.items()]
