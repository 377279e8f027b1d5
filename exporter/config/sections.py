"""Helpers for mapping sections: allowed keys (with a did-you-mean for typos), optional and
required keys, and lists with indexed key paths."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from exporter.config.errors import Ctx, describe, join


def check_mapping(ctx: Ctx, path: str, value: Any, allowed: Sequence[str]) -> dict[Any, Any] | None:
    """A mapping with only `allowed` keys; reports unknown ones. None (after an error) if not a
    mapping at all."""
    if not isinstance(value, dict):
        ctx.add(path, f"must be a mapping with keys {', '.join(allowed)}; got {describe(value)}")
        return None
    for key in value:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            ctx.add(join(path, key), f"unknown key ({hint}allowed: {', '.join(allowed)})")
    return value


def optional(
    ctx: Ctx,
    section: Mapping[Any, Any],
    path: str,
    key: str,
    parse: Callable[[Ctx, str, Any], Any],
    default: Any,
) -> Any:
    """An optional key: absent -> default; present but empty (null) -> error."""
    if key not in section:
        return default
    p = join(path, key)
    if section[key] is None:
        return ctx.add(p, "has no value (give one, or remove the key to use the default)")
    return parse(ctx, p, section[key])


def required(
    ctx: Ctx,
    section: Mapping[Any, Any],
    path: str,
    key: str,
    parse: Callable[[Ctx, str, Any], Any],
    example: str,
) -> Any:
    p = join(path, key)
    if section.get(key) is None:
        return ctx.add(p, f"required (e.g. {key}: {example})")
    return parse(ctx, p, section[key])


def list_items(ctx: Ctx, path: str, value: Any, what: str) -> Iterator[tuple[str, Any]]:
    if not isinstance(value, list):
        ctx.add(path, f"must be a list of {what}, got {describe(value)}")
        return
    for i, item in enumerate(value):
        yield f"{path}[{i}]", item
