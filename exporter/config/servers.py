"""The `servers` list and the `staffing` blocks (top level, or per server)."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from exporter.config import scalars
from exporter.config.errors import BAD, Ctx, describe, join
from exporter.config.model import Secret, ServerConfig, Staffing, StaffingRule
from exporter.config.sections import check_mapping, list_items, optional, required

DEFAULT_TIMEOUT = 10.0
# One `count=0` answer holds a whole day of history: about 20 MB for 20,000 agents with ten
# sessions each. A larger answer is refused, so a broken or hostile server cannot exhaust
# the exporter's memory (peak RSS stays under about twice this plus 100 MiB).
DEFAULT_MAX_RESPONSE_SIZE = 64 << 20
MIN_RESPONSE_SIZE = 64 << 10
SERVER_KEYS = (
    "name",
    "url",
    "user_id",
    "user_id_file",
    "auth_token",
    "auth_token_file",
    "timezone",
    "verify_tls",
    "ca_file",
    "timeout",
    "max_response_size",
    "staffing",
)
STAFFING_KEYS = ("timezone", "default", "rules", "holidays")
RULE_KEYS = ("days", "from", "to", "agents", "department")

_SERVER_NAME = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class _StaffingSpec:
    """A parsed staffing block whose time zone may still default to its server's."""

    timezone: str | None
    default: int
    rules: tuple[StaffingRule, ...]
    holidays: frozenset[date]

    def resolve(self, server_timezone: str) -> Staffing:
        """The whole team's schedule: the rules that name no department."""
        return Staffing(
            timezone=self.timezone or server_timezone,
            default=self.default,
            rules=tuple(r for r in self.rules if r.department is None),
            holidays=self.holidays,
        )

    def per_department(self, server_timezone: str) -> tuple[tuple[str, Staffing], ...]:
        """One schedule per department named in a rule: its rules in order, default 0."""
        names = sorted({r.department for r in self.rules if r.department is not None})
        return tuple(
            (
                name,
                Staffing(
                    timezone=self.timezone or server_timezone,
                    default=0,
                    rules=tuple(r for r in self.rules if r.department == name),
                    holidays=self.holidays,
                ),
            )
            for name in names
        )


def staffing_spec(ctx: Ctx, path: str, value: Any) -> Any:
    section = check_mapping(ctx, path, value, STAFFING_KEYS)
    if section is None:
        return BAD
    tz = optional(ctx, section, path, "timezone", scalars.timezone, None)
    default = optional(ctx, section, path, "default", scalars.integer, 0)
    rules_path = join(path, "rules")
    rules = tuple(
        _rule(ctx, p, v) for p, v in list_items(ctx, rules_path, section.get("rules", []), "rules")
    )
    holidays_path = join(path, "holidays")
    holidays = [
        scalars.holiday(ctx, p, v)
        for p, v in list_items(ctx, holidays_path, section.get("holidays", []), "dates")
    ]
    if BAD in (tz, default) or BAD in rules or BAD in holidays:
        return BAD
    return _StaffingSpec(tz, default, rules, frozenset(holidays))


def _rule(ctx: Ctx, path: str, value: Any) -> Any:
    section = check_mapping(ctx, path, value, RULE_KEYS)
    if section is None:
        return BAD
    days = required(ctx, section, path, "days", scalars.days, "[mon-fri]")
    start = required(ctx, section, path, "from", scalars.clock_start, '"08:00"')
    end = required(ctx, section, path, "to", scalars.clock_end, '"18:00"')
    agents = required(ctx, section, path, "agents", scalars.integer, "2")
    department = optional(ctx, section, path, "department", _department_name, None)
    if BAD in (start, end):
        return BAD
    if end <= start:
        return ctx.add(
            join(path, "to"),
            f"must be after from ({start:%H:%M} to {end:%H:%M}); a rule cannot cross midnight, "
            'split it into two rules (the first ending at "24:00")',
        )
    if BAD in (days, agents, department):
        return BAD
    return StaffingRule(days=days, start=start, end=end, agents=agents, department=department)


def _department_name(ctx: Ctx, path: str, value: Any) -> Any:
    name = scalars.string(ctx, path, value, "a department name or id such as Sales")
    if name is not BAD and not name.strip():
        return ctx.add(path, "is empty (give a department name or id, or remove the key)")
    return name if name is BAD else name.strip()


# --- servers ------------------------------------------------------------------------------------


def parse_servers(ctx: Ctx, value: Any, staffing: Any) -> tuple[ServerConfig, ...]:
    if value is None:
        ctx.add(
            "servers", "required (list at least one server with name, url, user_id, auth_token)"
        )
        return ()
    items = list(list_items(ctx, "servers", value, "servers"))
    if isinstance(value, list) and not items:
        ctx.add("servers", "is empty (list at least one server)")
    servers = [_server(ctx, p, v, staffing) for p, v in items]
    names: set[str] = set()
    for (p, _), s in zip(items, servers, strict=True):
        if s is not BAD and s.name in names:
            ctx.add(join(p, "name"), f"duplicate server name {s.name!r} (names must be unique)")
        elif s is not BAD:
            names.add(s.name)
    return tuple(servers)


def _server_name(ctx: Ctx, path: str, value: Any) -> Any:
    name = scalars.string(ctx, path, value, "a name such as main")
    if name is not BAD and not _SERVER_NAME.fullmatch(name):
        return ctx.add(path, f"invalid name {name!r} (use only letters, digits, _, . and -)")
    return name


def _server(ctx: Ctx, path: str, value: Any, top_staffing: Any) -> Any:
    section = check_mapping(ctx, path, value, SERVER_KEYS)
    if section is None:
        return BAD
    name = required(ctx, section, path, "name", _server_name, "main")
    url = required(ctx, section, path, "url", scalars.url, "https://chat.example.com")
    user_id = _secret(ctx, section, path, "user_id", "${ROCKETCHAT_USER_ID}")
    token = _secret(ctx, section, path, "auth_token", "${ROCKETCHAT_AUTH_TOKEN}")
    tz = optional(ctx, section, path, "timezone", scalars.timezone, "UTC")
    verify = optional(ctx, section, path, "verify_tls", scalars.boolean, True)
    ca_file = optional(ctx, section, path, "ca_file", scalars.readable_file, None)
    if verify is False and ca_file not in (None, BAD):
        ca_file = ctx.add(
            join(path, "ca_file"), "is set but verify_tls is false (remove one of them)"
        )
    timeout = optional(ctx, section, path, "timeout", scalars.duration, DEFAULT_TIMEOUT)
    max_size = optional(
        ctx,
        section,
        path,
        "max_response_size",
        functools.partial(scalars.size, minimum=MIN_RESPONSE_SIZE),
        DEFAULT_MAX_RESPONSE_SIZE,
    )
    spec = top_staffing
    if "staffing" in section:  # an explicit `staffing:` (even empty) replaces the top-level one
        spec = section["staffing"]
        if spec is not None:
            spec = staffing_spec(ctx, join(path, "staffing"), spec)
    values = (name, url, user_id, token, tz, verify, ca_file, timeout, max_size, spec)
    if BAD in values:
        return BAD
    return ServerConfig(
        name=name,
        url=url,
        user_id=user_id,
        auth_token=token,
        timezone=tz,
        verify_tls=verify,
        ca_file=ca_file,
        timeout=timeout,
        max_response_size=max_size,
        staffing=spec.resolve(tz) if spec is not None else None,
        department_staffing=spec.per_department(tz) if spec is not None else (),
    )


def _secret(ctx: Ctx, section: Mapping[Any, Any], path: str, key: str, example: str) -> Any:
    """`key` inline or `key_file`: exactly one. The value is never put into a message."""
    file_key = f"{key}_file"
    p, fp = join(path, key), join(path, file_key)
    if key in section and file_key in section:
        return ctx.add(p, f"set only one of {key} and {file_key}")
    if key in section:
        value = section[key]
        if not isinstance(value, str):
            return ctx.add(p, f"must be a string (put it in quotes), got {describe(value)}")
        value = str(value).strip()
        if not value:
            return ctx.add(p, f"is empty (e.g. {key}: {example})")
        ctx.secrets.add(value)
        return Secret(value=value, key=p)
    if file_key not in section:
        return ctx.add(p, f"required (e.g. {key}: {example}, or {file_key}: /path/to/file)")
    file = scalars.file_path(ctx, fp, section[file_key])
    if file is BAD:
        return BAD
    secret = Secret(path=file, key=fp)
    try:
        value = secret.get()  # also primes the cache
    except FileNotFoundError:
        return ctx.add(fp, f"file not found: {file}")
    except UnicodeDecodeError:
        return ctx.add(fp, f"{file} is not UTF-8 text")
    except OSError as e:
        return ctx.add(fp, f"cannot read {file}: {e.strerror}")
    if not value:
        return ctx.add(fp, f"{file} is empty")
    ctx.secrets.add(value)
    return secret
