"""Pure parsing of the department, queue and load routes. No HTTP, no clock, no logging.

Like parse.py: any JSON value in, model values or `BadBody` out. Items without what they need
(an id, a timestamp) are skipped and counted, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter.model import Department, Load, Queued
from exporter.rocketchat.parse import BadBody, _checked_object, _count, chat_limit, parse_instant
from exporter.text import clean

__all__ = [
    "BadBody",
    "DepartmentsPage",
    "LoadPage",
    "QueuePage",
    "parse_departments_page",
    "parse_load_page",
    "parse_queue_page",
]


@dataclass(frozen=True, slots=True)
class DepartmentsPage:
    departments: tuple[Department, ...]
    received: int
    total: int | None
    skipped: int


@dataclass(frozen=True, slots=True)
class QueuePage:
    queued: tuple[Queued, ...]
    received: int
    total: int | None
    skipped: int


@dataclass(frozen=True, slots=True)
class LoadPage:
    load: tuple[Load, ...]
    received: int
    total: int | None
    skipped: int


def _text(value: object) -> str | None:
    return clean(value) if type(value) is str and value else None


def parse_departments_page(body: object) -> DepartmentsPage:
    """GET livechat/department: `{departments: [{_id, name, enabled, archived, ...}], ...}`.

    Archived departments are left out (they take no chats); disabled ones are kept, marked.
    """
    items = _checked_object(body, "departments")
    out: list[Department] = []
    skipped = 0
    for item in items:
        dep_id = _text(item.get("_id")) if type(item) is dict else None
        if dep_id is None:
            skipped += 1
            continue
        assert isinstance(item, dict)
        if item.get("archived") is True:
            continue
        out.append(
            Department(
                id=dep_id,
                name=_text(item.get("name")) or dep_id,
                enabled=item.get("enabled") is not False,
                max_chats=chat_limit(
                    {"maxNumberSimultaneousChat": item.get("maxNumberSimultaneousChat")}
                ),
            )
        )
    assert isinstance(body, dict)
    return DepartmentsPage(tuple(out), len(items), _count(body.get("total")), skipped)


def parse_queue_page(body: object) -> QueuePage:
    """GET livechat/inquiries.list: `{inquiries: [{rid, name, ts, status, department}], ...}`.

    Only `status: queued` inquiries are returned by the route; anything else is skipped too.
    """
    items = _checked_object(body, "inquiries")
    out: list[Queued] = []
    skipped = 0
    for item in items:
        ts = parse_instant(item.get("ts")) if type(item) is dict else None
        if ts is None or item.get("status", "queued") != "queued":  # type: ignore[union-attr]
            skipped += 1
            continue
        assert isinstance(item, dict)
        out.append(Queued(department=_text(item.get("department")), ts=ts))
    assert isinstance(body, dict)
    return QueuePage(tuple(out), len(items), _count(body.get("total")), skipped)


def parse_load_page(body: object) -> LoadPage:
    """GET livechat/queue: `{queue: [{user: {_id, username, status}, department: {_id, name},
    chats}], ...}`: open chats per agent and department (agent load, not the queue)."""
    items = _checked_object(body, "queue")
    out: list[Load] = []
    skipped = 0
    for item in items:
        if type(item) is not dict:
            skipped += 1
            continue
        user = item.get("user")
        username = _text(user.get("username")) if type(user) is dict else None
        chats = _count(item.get("chats"))
        if username is None or chats is None:
            skipped += 1
            continue
        dep = item.get("department")
        out.append(Load(username, _text(dep.get("_id")) if type(dep) is dict else None, chats))
    assert isinstance(body, dict)
    return LoadPage(tuple(out), len(items), _count(body.get("total")), skipped)
