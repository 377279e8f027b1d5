"""Pure parsing of GET livechat/rooms. No HTTP, no clock, no logging.

Rocket.Chat returns whole room documents (the `fields` parameter is accepted but not applied):
visitor details, the last message's text, the room's name. Only the few fields below are read;
everything else is dropped here and never reaches a log, a metric or the landing page.
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter.model import ClosedRoom
from exporter.rocketchat.parse import BadBody, _checked_object, _count, _seconds, parse_instant
from exporter.text import clean

__all__ = ["BadBody", "RoomsPage", "parse_rooms_page"]


@dataclass(frozen=True, slots=True)
class RoomsPage:
    rooms: tuple[ClosedRoom, ...]
    received: int
    total: int | None
    skipped: int  # items without an id or a closedAt (not closed, or unusable)


def _metric(metrics: object, *path: str) -> float | None:
    value = metrics
    for key in path:
        if type(value) is not dict:
            return None
        value = value.get(key)
    return _seconds(value)


def parse_room(item: object) -> ClosedRoom | None:
    if type(item) is not dict:
        return None
    room_id = item.get("_id")
    closed_at = parse_instant(item.get("closedAt"))
    if type(room_id) is not str or not room_id or closed_at is None:
        return None
    served = item.get("servedBy")
    dep = item.get("departmentId")
    metrics = item.get("metrics")
    return ClosedRoom(
        id=room_id,
        closed_at=closed_at,
        department=clean(dep) if type(dep) is str and dep else None,
        created_at=parse_instant(item.get("ts")),
        served=type(served) is dict,
        served_at=parse_instant(served.get("ts")) if type(served) is dict else None,
        first_response=_metric(metrics, "response", "ft"),
        duration=_metric(metrics, "chatDuration"),
    )


def parse_rooms_page(body: object) -> RoomsPage:
    """`{rooms: [...], count, offset, total}`; rooms without `_id` or `closedAt` are skipped."""
    items = _checked_object(body, "rooms")
    out = []
    for item in items:
        room = parse_room(item)
        if room is not None:
            out.append(room)
    assert isinstance(body, dict)
    return RoomsPage(tuple(out), len(items), _count(body.get("total")), len(items) - len(out))
