"""The `service_level` section: off unless present (docs/service-level.md)."""

from __future__ import annotations

import math
from typing import Any

from exporter.config import scalars
from exporter.config.errors import BAD, Ctx, describe, join
from exporter.config.model import ServiceLevel
from exporter.config.sections import check_mapping, list_items, optional

KEYS = (
    "enabled",
    "wait_buckets",
    "response_buckets",
    "duration_buckets",
    "per_department",
    "overlap",
    "target_ratio",
    "target_seconds",
)
_DEFAULT = ServiceLevel(enabled=True)


def service_level(ctx: Ctx, path: str, value: Any) -> Any:
    section = check_mapping(ctx, path, {} if value is None else value, KEYS)
    if section is None:
        return BAD
    got = {
        "enabled": optional(ctx, section, path, "enabled", scalars.boolean, True),
        "wait_buckets": optional(
            ctx, section, path, "wait_buckets", _buckets, _DEFAULT.wait_buckets
        ),
        "response_buckets": optional(
            ctx, section, path, "response_buckets", _buckets, _DEFAULT.response_buckets
        ),
        "duration_buckets": optional(
            ctx, section, path, "duration_buckets", _buckets, _DEFAULT.duration_buckets
        ),
        "per_department": optional(ctx, section, path, "per_department", scalars.boolean, False),
        "overlap": optional(ctx, section, path, "overlap", scalars.duration, _DEFAULT.overlap),
        "target_ratio": optional(ctx, section, path, "target_ratio", _ratio, 0.8),
        "target_seconds": optional(
            ctx, section, path, "target_seconds", scalars.duration, _DEFAULT.target_seconds
        ),
    }
    if BAD in got.values():
        return BAD
    if got["target_seconds"] not in got["wait_buckets"]:
        return ctx.add(
            join(path, "target_seconds"),
            f"{got['target_seconds']:g} s is not one of wait_buckets "
            f"({', '.join(f'{b:g}' for b in got['wait_buckets'])}): add it there, so that "
            "the service level can be read from a bucket",
        )
    return ServiceLevel(**got)


def _buckets(ctx: Ctx, path: str, value: Any) -> Any:
    if not isinstance(value, list) or not value:
        return ctx.add(
            path,
            "must be a non-empty list of bucket bounds in seconds (e.g. [10, 30, 60, 300]); "
            f"got {describe(value)}",
        )
    out: list[float] = []
    for p, item in list_items(ctx, path, value, "bucket bounds in seconds"):
        seconds = scalars.duration(ctx, p, item)
        if seconds is BAD:
            return BAD
        out.append(seconds)
    if any(b <= a for a, b in zip(out, out[1:], strict=False)):
        return ctx.add(path, f"must be strictly increasing; got {describe(value)}")
    return tuple(out)


def _ratio(ctx: Ctx, path: str, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return ctx.add(path, f"must be a number between 0 and 1 (e.g. 0.8); got {describe(value)}")
    if not 0 < value <= 1:
        return ctx.add(path, f"must be between 0 and 1 (e.g. 0.8 for 80 %); got {value}")
    return float(value)
