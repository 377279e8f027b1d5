"""Scalar validators: each takes (ctx, key path, value) and returns the parsed value, or `BAD`
after recording an error that names the key and the fix."""

from __future__ import annotations

import difflib
import functools
import math
import os
import re
from datetime import date, datetime, time
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from exporter.config.errors import BAD, Ctx, Expanded, describe
from exporter.config.model import Window

MAX_WINDOW_SECONDS = 31 * 86400.0

_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAYS = {n: i for i, n in enumerate(_DAY_NAMES)} | {n: i for i, n in enumerate(_FULL_DAY_NAMES)}


_NUM = r"(\d+(?:\.\d+)?)"
_DURATION = re.compile(rf"(?:{_NUM}d)?(?:{_NUM}h)?(?:{_NUM}m)?(?:{_NUM}s)?")
_PLAIN_SECONDS = re.compile(_NUM)
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

_DURATION_HINT = "use a number with a unit s, m, h or d, e.g. 30s, 5m, 1h30m"


def boolean(ctx: Ctx, path: str, value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, Expanded) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if isinstance(value, str) and len(value) <= 10:
        return ctx.add(path, f"must be true or false (without quotes), got the string {value!r}")
    return ctx.add(path, f"must be true or false (without quotes), got {describe(value)}")


def integer(ctx: Ctx, path: str, value: Any, *, minimum: int = 0) -> Any:
    if isinstance(value, Expanded) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        return ctx.add(path, f"must be a whole number >= {minimum}, got {describe(value)}")
    if value < minimum:
        return ctx.add(path, f"must be a whole number >= {minimum}, got {value}")
    return value


def duration_value(value: Any, *, allow_plain: bool) -> float | None:
    """Seconds, or None when `value` is not a duration at all."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if allow_plain else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if allow_plain and _PLAIN_SECONDS.fullmatch(text):
        return float(text)
    m = _DURATION.fullmatch(text)
    if not text or m is None:
        return None
    d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return d * 86400 + h * 3600 + mi * 60 + s


def duration(ctx: Ctx, path: str, value: Any) -> Any:
    seconds = duration_value(value, allow_plain=True)
    if seconds is None:
        shown = repr(value) if isinstance(value, str) else describe(value)
        return ctx.add(path, f"invalid duration {shown} ({_DURATION_HINT}, or plain seconds)")
    if not math.isfinite(seconds) or seconds <= 0:
        return ctx.add(path, f"must be greater than 0 ({_DURATION_HINT})")
    return seconds


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
}
_SIZE_HINT = "a number of bytes, or with a unit: KiB, MiB, GiB (or KB, MB, GB)"


def size(ctx: Ctx, path: str, value: Any, *, minimum: int = 1) -> Any:
    """Bytes: 67108864, "64MiB", "64 MB"."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return ctx.add(path, f"must be a size ({_SIZE_HINT}), got {describe(value)}")
    if isinstance(value, int):
        number = value
    else:
        m = _SIZE.fullmatch(value.strip())
        if m is None:
            return ctx.add(path, f"invalid size {value!r} ({_SIZE_HINT})")
        number = int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "b").lower()])
    if number < minimum:
        return ctx.add(path, f"must be at least {minimum} bytes, got {number}")
    return number


def string(ctx: Ctx, path: str, value: Any, what: str) -> Any:
    if not isinstance(value, str):
        return ctx.add(path, f"must be {what} (a string), got {describe(value)}")
    return str(value).strip()


@functools.lru_cache(maxsize=1)
def _zone_names() -> dict[str, str]:
    return {n.lower(): n for n in available_timezones()}


def timezone(ctx: Ctx, path: str, value: Any) -> Any:
    name = string(ctx, path, value, "an IANA time zone name such as Europe/Berlin")
    if name is BAD:
        return BAD
    try:
        ZoneInfo(name)
        return name
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    names = _zone_names()
    close = (
        [name.lower()]
        if name.lower() in names
        else difflib.get_close_matches(name.lower(), names, n=1)
    )
    example = names[close[0]] if close else "Europe/Berlin"
    return ctx.add(path, f"unknown time zone {name!r} (use an IANA name such as {example})")


def regex(ctx: Ctx, path: str, value: Any) -> Any:
    text = string(ctx, path, value, "a regular expression")
    if text is BAD:
        return BAD
    try:
        # DOTALL: usernames are untrusted and may contain a newline; `.*` must still match.
        return re.compile(text, re.DOTALL)
    except re.error as e:
        return ctx.add(path, f"invalid regular expression {text!r}: {e}")


def file_path(ctx: Ctx, path: str, value: Any) -> Any:
    text = string(ctx, path, value, "a file path")
    if text is BAD:
        return BAD
    if not text:
        return ctx.add(path, "is empty (give a file path, or remove the key)")
    return os.path.abspath(os.path.join(ctx.base_dir, os.path.expanduser(text)))


def directory(ctx: Ctx, path: str, value: Any) -> Any:
    """A directory path, or None for "" (off: so that `${VAR}` can switch it off). Relative
    paths are taken from the config file's directory. Whether it can be created and written is
    checked when the exporter starts (exporter/daystore.py), not here: check-config may run on
    another machine than the exporter."""
    text = string(ctx, path, value, "a directory path")
    if text is BAD:
        return BAD
    if not text:
        return None
    if "\0" in text:
        return ctx.add(path, "contains a NUL character (give a directory path, or remove the key)")
    return os.path.abspath(os.path.join(ctx.base_dir, os.path.expanduser(text)))


def readable_file(ctx: Ctx, path: str, value: Any) -> Any:
    file = file_path(ctx, path, value)
    if file is BAD:
        return BAD
    try:
        with open(file, "rb"):
            pass
    except FileNotFoundError:
        return ctx.add(path, f"file not found: {file}")
    except OSError as e:
        return ctx.add(path, f"cannot read {file}: {e.strerror}")
    return file


def url(ctx: Ctx, path: str, value: Any) -> Any:
    text = string(ctx, path, value, "a URL such as https://chat.example.com")
    if text is BAD:
        return BAD
    try:
        parts = urlsplit(text)
        _ = parts.port  # raises on a bad port
    except ValueError:
        return ctx.add(path, "is not a valid URL (e.g. https://chat.example.com)")
    if "@" in parts.netloc:
        # Not echoed: it holds credentials.
        return ctx.add(path, "must not contain credentials (use user_id and auth_token)")
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return ctx.add(
            path, f"{text!r} must be an http:// or https:// URL such as https://chat.example.com"
        )
    if parts.query or parts.fragment:
        # Not echoed: a query may hold a token.
        return ctx.add(path, "must not have a query or fragment (give the base URL)")
    return text.rstrip("/")


def clock(ctx: Ctx, path: str, value: Any, *, is_end: bool) -> Any:
    if isinstance(value, time):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return ctx.add(
            path,
            f'got the number {value}: write the time in quotes, e.g. "08:00" '
            "(YAML reads an unquoted 18:00 as the number 1080)",
        )
    m = _CLOCK.fullmatch(value.strip()) if isinstance(value, str) else None
    if m is None:
        shown = repr(value) if isinstance(value, str) else describe(value)
        return ctx.add(path, f'invalid time {shown} (use "HH:MM" or "HH:MM:SS", e.g. "08:00")')
    h, mi, s = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    if (h, mi, s) == (24, 0, 0):
        if is_end:
            return time.max  # end of day; `end` is exclusive, so this covers up to midnight
        return ctx.add(path, '24:00 is only allowed for "to" (start the day at "00:00")')
    if h > 23 or mi > 59 or s > 59:
        return ctx.add(path, f"invalid time {value!r} (hours 00-23, minutes and seconds 00-59)")
    return time(h, mi, s)


def _day_names(ctx: Ctx, path: str, text: str) -> set[int] | None:
    """One entry of `days`: a day name or a range such as mon-fri (may wrap: fri-mon)."""
    ends = [t.strip().lower() for t in text.split("-")]
    if len(ends) <= 2 and all(e in _DAYS for e in ends):
        first, last = _DAYS[ends[0]], _DAYS[ends[-1]]
        return {(first + i) % 7 for i in range((last - first) % 7 + 1)}
    ctx.add(
        path,
        f"unknown day {text!r} (use {', '.join(_DAY_NAMES)} or a range such as mon-fri)",
    )
    return None


def days(ctx: Ctx, path: str, value: Any) -> Any:
    if isinstance(value, str):
        items = [(path, part) for part in value.split(",")]
    elif isinstance(value, list):
        items = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
    else:
        return ctx.add(path, f"must be a list of days such as [mon, tue], got {describe(value)}")
    if not items:
        return ctx.add(path, "is empty (list days such as [mon-fri], or mon-sun for every day)")
    days: set[int] = set()
    ok = True
    for p, item in items:
        if not isinstance(item, str):
            ctx.add(p, f"must be a day name such as mon, got {describe(item)}")
            ok = False
            continue
        got = _day_names(ctx, p, item)
        ok = ok and got is not None
        days |= got or set()
    return frozenset(days) if ok else BAD


def holiday(ctx: Ctx, path: str, value: Any) -> Any:
    if isinstance(value, datetime):  # a subclass of date: check it first
        return ctx.add(path, "must be a date without a time, e.g. 2026-12-25")
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    shown = repr(value) if isinstance(value, str) else describe(value)
    return ctx.add(path, f"invalid date {shown} (use YYYY-MM-DD, e.g. 2026-12-25)")


def window(ctx: Ctx, path: str, value: Any) -> Any:
    if not isinstance(value, str):
        hint = " (add a unit, e.g. 90m)" if isinstance(value, int | float) else ""
        return ctx.add(path, f"must be a string such as 1h or today, got {describe(value)}{hint}")
    name = value.strip()
    if name in ("today", "yesterday"):
        return Window(name=name, kind="today" if name == "today" else "yesterday")
    seconds = duration_value(name, allow_plain=False)
    if seconds is None:
        return ctx.add(
            path,
            f"invalid window {name!r} (use a duration such as 90m, 1h, 7d, or today/yesterday)",
        )
    if seconds <= 0 or seconds > MAX_WINDOW_SECONDS:
        return ctx.add(path, f"window {name!r} must be longer than 0 and at most 31d")
    return Window(name=name, kind="duration", seconds=seconds)


def clock_start(ctx: Ctx, path: str, value: Any) -> Any:
    return clock(ctx, path, value, is_end=False)


def clock_end(ctx: Ctx, path: str, value: Any) -> Any:
    return clock(ctx, path, value, is_end=True)
