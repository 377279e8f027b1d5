"""Rocket.Chat's REST plumbing: error bodies, ajv-style query validation, JavaScript date
parsing, pagination arithmetic and the Meteor rate limiter."""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_tz
from typing import Any

from .data import Zone

# --- bodies (apps/meteor/app/api/server/ApiClass.ts) -------------------------------------------

LOGIN_MESSAGE = "You must be logged in to do this."
BODY_401 = {"success": False, "status": "error", "message": LOGIN_MESSAGE, "error": LOGIN_MESSAGE}
BODY_401_OLD = {"status": "error", "message": LOGIN_MESSAGE}
BODY_403 = {
    "success": False,
    "error": "User does not have the permissions required for this action [error-unauthorized]",
}
BODY_403_OLD = {"success": False, "error": "unauthorized"}
BODY_ENTERPRISE = {
    "success": False,
    "error": "This is an enterprise feature [error-action-not-allowed]",
    "errorType": "error-action-not-allowed",
}
BODY_NOT_FOUND = {"status": "error", "message": "API endpoint does not exist"}
BODY_5XX = {
    500: {"success": False, "error": "Internal server error"},
    503: {"success": False, "error": "Service Unavailable"},
}
HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


def too_many_requests(wait_seconds: int) -> dict[str, Any]:
    return {
        "success": False,
        "error": "Error, too many requests. Please slow down. You must wait "
        f"{wait_seconds} seconds before trying this endpoint again. [error-too-many-requests]",
    }


def invalid_params(message: str) -> dict[str, Any]:
    return {"success": False, "error": f"{message} [invalid-params]", "errorType": "invalid-params"}


def failure(message: str) -> dict[str, Any]:
    """API.v1.failure('...') with a plain message: no errorType."""
    return {"success": False, "error": message}


# --- ajv (coerceTypes: true, allErrors: false) -------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuerySchema:
    properties: dict[str, str]  # name -> "string" | "number" | "boolean"
    required: tuple[str, ...] = ()
    additional: bool = False
    # `nullable: true` in rest-typings: ajv then coerces "" to null (instead of failing a
    # number or boolean, or keeping "" for a string), and null means "not given" downstream.
    nullable: frozenset[str] = frozenset()


# JavaScript's ToNumber on a string (what ajv's `x == +x` test relies on), minus "" (ajv
# coerces only non-empty strings): decimal with exponent, Infinity, 0x / 0o / 0b literals,
# surrounding whitespace ignored, whitespace alone is 0.
_JS_WS = (
    " \t\n\v\f\r\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?Infinity")
_RADIX = re.compile(r"0([xX][0-9a-fA-F]+|[oO][0-7]+|[bB][01]+)")


def js_number(text: str) -> float | None:
    """+text in JavaScript, or None for NaN."""
    s = text.strip(_JS_WS)
    if not s:
        return 0.0
    if _DECIMAL.fullmatch(s):
        return float(s.replace("Infinity", "inf"))
    m = _RADIX.fullmatch(s)
    if m:
        return float(int(m.group(1)[1:], {"x": 16, "o": 8, "b": 2}[m.group(1)[0].lower()]))
    return None


def _coerce(kind: str, value: str | list[str], nullable: bool) -> tuple[bool, Any]:
    if kind == "array":  # ?a=1&a=2 only: coerceTypes does not make an array of one value
        return (True, value) if isinstance(value, list) else (False, None)
    if kind == "string|array":  # oneOf string, array of strings
        return True, value
    if isinstance(value, list):  # ?a=1&a=2 reaches the schema as an array
        return False, None
    if kind == "string":
        return True, value
    if value == "" and nullable:  # ajv tries the declared type, then null
        return True, None
    if kind == "number":
        n = js_number(value) if value else None
        return (False, None) if n is None else (True, n)
    if kind == "boolean":
        if value in ("true", "false"):
            return True, value == "true"
        return False, None
    raise ValueError(kind)


def validate(schema: QuerySchema, query: dict[str, str | list[str]]) -> tuple[str | None, dict]:
    """First error the way ajv reports it (required, then additionalProperties, then types),
    or (None, coerced query)."""
    for name in schema.required:
        if name not in query:
            return f"must have required property '{name}'", {}
    if not schema.additional:
        for name in query:
            if name not in schema.properties:
                return "must NOT have additional properties", {}
    out: dict[str, Any] = dict(query)
    for name, kind in schema.properties.items():
        if name in query and kind.startswith("enum:"):  # a string limited to these values
            if query[name] not in kind[5:].split(","):
                return "must be equal to one of the allowed values", {}
        elif name in query:
            ok, v = _coerce(kind, query[name], name in schema.nullable)
            if not ok:
                return f"must be {kind}", {}
            out[name] = v
    return None, out


# --- Date.parse / date-fns parseISO ------------------------------------------------------------

_ISO = re.compile(
    r"^([+-]\d{6}|\d{4})(?:-(\d{2})(?:-(\d{2}))?)?"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r"(Z|z|[+-]\d{2}(?::?\d{2})?)?$"
)


@dataclass(frozen=True, slots=True)
class JsDate:
    ms: int  # the instant Date.parse returns
    local_day: int  # the server-local day the activity model turns it into (YYYYMMDD)


def parse_js_date(text: str, zone: Zone) -> JsDate | None:
    """Date.parse(text) (None for NaN) plus the day the model derives from it.

    ISO forms follow ECMAScript: date-only is UTC, date-time without offset is local time.
    The model (date-fns parseISO / moment) reads a date-only string as a *local* date.
    Other forms accepted by V8 are approximated by RFC 2822.
    """
    text = text.strip()
    m = _ISO.match(text)
    if m:
        return _parse_iso(m, zone)
    parsed = parsedate_tz(text)
    if parsed is None:
        return None
    try:
        naive = datetime(*parsed[:6])
    except ValueError:
        return None
    if parsed[9] is None:
        ms = round(naive.replace(tzinfo=zone.tz).timestamp() * 1000)
    else:
        ms = round((naive.replace(tzinfo=UTC).timestamp() - parsed[9]) * 1000)
    return JsDate(ms, zone.day_of(ms))


def _parse_iso(m: re.Match[str], zone: Zone) -> JsDate | None:
    year_s, mon_s, day_s, hh, mi, ss, frac, off = m.groups()
    try:
        year = int(year_s)
        mon = int(mon_s or 1)
        day = int(day_s or 1)
        if hh is None:
            if off is not None:  # V8 rejects an offset on a date-only string
                return None
            d = datetime(year, mon, day, tzinfo=UTC)
            local_day = d.date().toordinal()
            return JsDate(round(d.timestamp() * 1000), local_day)
        micro = int((frac or "0")[:6].ljust(6, "0"))
        naive = datetime(year, mon, day, int(hh), int(mi), int(ss or 0), micro)
    except ValueError:
        return None
    if off is None:
        ms = round(naive.replace(tzinfo=zone.tz).timestamp() * 1000)
    else:
        if off in ("Z", "z"):
            offset_min = 0
        else:
            digits = off[1:].replace(":", "")
            offset_min = int(digits[:2]) * 60 + int(digits[2:] or 0)
            if off[0] == "-":
                offset_min = -offset_min
        ms = round(naive.replace(tzinfo=UTC).timestamp() * 1000) - offset_min * 60_000
    return JsDate(ms, zone.day_of(ms))


# --- getPaginationItems -------------------------------------------------------------------------


def pagination(
    query: dict[str, Any], default_count: int, upper_limit: int, allow_infinite: bool
) -> tuple[int, int]:
    """(offset, count) like apps/meteor/app/api/server/helpers/getPaginationItems.ts;
    count 0 means "no limit"."""
    raw_offset = query.get("offset")
    offset = _parse_int(raw_offset) if raw_offset else 0
    raw_count = query.get("count")
    count = default_count if raw_count is None else _parse_int(raw_count or 0)
    if count > upper_limit:
        count = upper_limit
    if count == 0 and not allow_infinite:
        count = default_count
    return offset, count


def _parse_int(v: Any) -> int:
    """parseInt(String(v)) for the numbers ajv already coerced."""
    if isinstance(v, float):
        # parseInt("Infinity") is NaN, which Rocket.Chat passes on to MongoDB; 0 here.
        return int(v) if math.isfinite(v) else 0
    m = re.match(r"^\s*([+-]?\d+)", str(v))
    return int(m.group(1)) if m else 0


# --- Meteor RateLimiter (one rule per route+method, keyed by client IP) ------------------------


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    headers: dict[str, str]
    wait_seconds: int


class RateLimiter:
    """increment() then check(), as ApiClass.enforceRateLimit does.

    A rule's window starts when the rule is created and restarts lazily at the first call after
    it expired; every counter of the rule is reset together."""

    def __init__(self, limit: int, window_s: float, now_ms: int):
        self._lock = threading.Lock()
        self.configure(limit, window_s, now_ms)

    def configure(self, limit: int, window_s: float, now_ms: int) -> None:
        with self._lock:
            self.limit = limit
            self.window_ms = round(window_s * 1000)
            self._rules: dict[str, tuple[int, dict[str, int]]] = {}
            self._created = now_ms

    @property
    def enabled(self) -> bool:
        return self.limit > 0 and self.window_ms > 0

    def hit(self, route: str, client: str, now_ms: int) -> RateDecision | None:
        if not self.enabled:
            return None
        with self._lock:
            last_reset, counters = self._rules.get(route, (self._created, {}))
            if now_ms - last_reset > self.window_ms:
                last_reset, counters = now_ms, {}
            n = counters.get(client, 0) + 1
            counters[client] = n
            self._rules[route] = (last_reset, counters)
            time_to_reset = self.window_ms - (now_ms - last_reset)
            allowed = n <= self.limit
            left = self.limit - n if allowed else 0
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(left),
            "X-RateLimit-Reset": str(now_ms + time_to_reset),
        }
        wait = -(-time_to_reset // 1000)  # Math.ceil(ms / 1000)
        return RateDecision(allowed, headers, wait)
