"""Load and validate the YAML configuration into the frozen values of `model.py`.

Every problem is reported as `<key path>: <what is wrong> (<how to fix it>)`, and all problems of a
file are collected and raised together as one `ConfigError` (one per line), so a user fixes a
config in one round instead of one error per restart.

Secrets (user ids, auth tokens, the content of their files) never appear in a message: validators
for those keys never echo values, and as a safety net every message is redacted against all secret
values seen before it is raised.
"""

from __future__ import annotations

import difflib
import functools
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import yaml

from exporter.config.model import (
    AgentFilter,
    Config,
    Secret,
    ServerConfig,
    Staffing,
    StaffingRule,
    Window,
)

DEFAULT_POLL_INTERVAL = 60.0
DEFAULT_STALENESS_FACTOR = 5  # max_staleness defaults to this many poll intervals
DEFAULT_WINDOWS = ("1h", "8h", "24h", "7d", "today")
DEFAULT_TIMEOUT = 10.0
MAX_WINDOW_SECONDS = 31 * 86400.0

TOP_KEYS = (
    "poll_interval",
    "max_staleness",
    "windows",
    "windows_include_open_sessions",
    "agents",
    "staffing",
    "servers",
)
AGENTS_KEYS = ("include", "exclude", "per_agent")
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
    "staffing",
)
STAFFING_KEYS = ("timezone", "default", "rules", "holidays")
RULE_KEYS = ("days", "from", "to", "agents")

_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAYS = {n: i for i, n in enumerate(_DAY_NAMES)} | {n: i for i, n in enumerate(_FULL_DAY_NAMES)}

_SERVER_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_NUM = r"(\d+(?:\.\d+)?)"
_DURATION = re.compile(rf"(?:{_NUM}d)?(?:{_NUM}h)?(?:{_NUM}m)?(?:{_NUM}s)?")
_PLAIN_SECONDS = re.compile(_NUM)
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_VAR_REF = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")  # escape | reference | unterminated
_VAR_BODY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)
_DURATION_HINT = "use a number with a unit s, m, h or d, e.g. 30s, 5m, 1h30m"
_MAX_DEPTH = 64


class ConfigError(Exception):
    """Invalid configuration. `str(err)` lists every problem, one per line, key path first."""

    def __init__(self, errors: str | Sequence[str]):
        self.errors: tuple[str, ...] = (errors,) if isinstance(errors, str) else tuple(errors)
        super().__init__("\n".join(self.errors))


# --- public API -------------------------------------------------------------------------------


def load_config(path: str, environ: Mapping[str, str] | None = None) -> Config:
    """Read, parse and validate the YAML file at `path`; relative `*_file` paths are taken from
    the file's directory."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found (check --config.file)") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: config file is not UTF-8 text") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file ({e.strerror})") from None
    data = _load_yaml(path, text)
    base_dir = os.path.dirname(os.path.abspath(path))
    return parse_config(data, base_dir=base_dir, environ=environ)


def parse_config(
    data: object, *, base_dir: str = ".", environ: Mapping[str, str] | None = None
) -> Config:
    """Validate already-parsed YAML data. Raises ConfigError listing every problem found."""
    ctx = _Ctx(base_dir=base_dir, environ=os.environ if environ is None else environ)
    data = _expand(ctx, "", data, 0)
    config = _parse_top(ctx, data)
    ctx.raise_if_any()
    assert config is not None
    return config


# --- YAML ---------------------------------------------------------------------------------------

_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
# PyYAML's YAML 1.1 resolvers minus the base-60 forms, so that `from: 18:00` stays the string
# "18:00" instead of becoming the number 1080.
_NO_SEXAGESIMAL = {
    _INT_TAG: re.compile(
        r"""^(?:[-+]?0b[0-1_]+
        |[-+]?0[0-7_]+
        |[-+]?(?:0|[1-9][0-9_]*)
        |[-+]?0x[0-9a-fA-F_]+)$""",
        re.X,
    ),
    _FLOAT_TAG: re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
        |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
}


class _Loader(yaml.SafeLoader):
    """SafeLoader without base-60 numbers, and with located errors for impossible dates."""

    def construct_yaml_timestamp(self, node: yaml.Node) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError as e:  # e.g. 2026-13-01: PyYAML raises a bare ValueError
            raise yaml.constructor.ConstructorError(
                None, None, f"invalid date {node.value!r} ({e}; use YYYY-MM-DD)", node.start_mark
            ) from None


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_timestamp)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, _NO_SEXAGESIMAL.get(tag, rx)) for tag, rx in resolvers]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _load_yaml(path: str, text: str) -> Any:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_duplicate_keys(node)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        raise ConfigError(_yaml_message(path, e)) from None
    except yaml.YAMLError:
        raise ConfigError(f"{path}: invalid YAML") from None
    finally:
        loader.dispose()


def _check_duplicate_keys(root: yaml.Node) -> None:
    """PyYAML silently keeps the last of two equal keys; a typo'd copy-paste should not pass."""
    seen_nodes: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:  # aliases share nodes, and may even be recursive
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag.endswith(":merge"):
                    stack.append(value_node)
                    continue
                if isinstance(key_node, yaml.ScalarNode):
                    if key_node.value in keys:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
                        )
                    keys.add(key_node.value)
                stack.append(value_node)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def _yaml_message(path: str, e: yaml.MarkedYAMLError) -> str:
    # Built from the parts, never str(e): that includes a snippet of the offending line, which
    # may hold a token.
    mark = e.problem_mark or e.context_mark
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
    problem = e.problem or e.context or "syntax error"
    if e.context and e.problem and e.context_mark is not None:
        problem += f" ({e.context} at line {e.context_mark.line + 1})"
    if "'\\t'" in problem:
        problem += "; indent with spaces, not tabs"
    return f"{where}: invalid YAML: {problem}"


# --- collection of errors ---------------------------------------------------------------------


class _Bad:
    """Marker for a value that failed validation (its error is already recorded)."""

    def __repr__(self) -> str:
        return "<bad>"


BAD: Any = _Bad()


class _Expanded(str):
    """A string that came (partly) from an environment variable. Such values may also stand for
    a bool or int ("true", "3"), because environment variables can only carry strings."""


@dataclass
class _Ctx:
    base_dir: str
    environ: Mapping[str, str]

    def __post_init__(self) -> None:
        self.errors: list[str] = []
        self.secrets: set[str] = set()
        # Paths whose ${...} expansion failed: they hold BAD, and any later complaint about that
        # value ("must be a string") would only repeat the first error.
        self.unexpanded: set[str] = set()

    def add(self, path: str, message: str) -> Any:
        if path not in self.unexpanded:
            self.errors.append(f"{path or 'config'}: {message}")
        return BAD

    def add_unexpanded(self, path: str, message: str) -> Any:
        self.add(path, message)
        self.unexpanded.add(path)
        return BAD

    def raise_if_any(self) -> None:
        if self.errors:
            raise ConfigError([self._redact(m) for m in self.errors])

    def _redact(self, message: str) -> str:
        # Longest first, so a secret containing another is removed whole.
        for secret in sorted(self.secrets, key=len, reverse=True):
            if len(secret) >= 4:
                message = message.replace(secret, "<redacted>")
        return message


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _describe(value: object) -> str:
    """The kind of a value, for messages that must not echo it."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, datetime):
        return "a date and time"
    if isinstance(value, date):
        return "a date"
    return f"a {type(value).__name__}"


# --- ${VAR} expansion --------------------------------------------------------------------------


def _expand(ctx: _Ctx, path: str, value: Any, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        return ctx.add(path, "nested too deeply (is there a recursive YAML alias?)")
    if isinstance(value, str):
        return _expand_str(ctx, path, value)
    if isinstance(value, list):
        return [_expand(ctx, f"{path}[{i}]", v, depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _expand(ctx, _join(path, k), v, depth + 1) for k, v in value.items()}
    return value


def _expand_str(ctx: _Ctx, path: str, text: str) -> Any:
    if "${" not in text:
        return text
    out: list[str] = []
    pos = 0
    used_env = False
    for m in _VAR_REF.finditer(text):
        out.append(text[pos : m.start()])
        pos = m.end()
        token = m.group(0)
        if token == "$${":
            out.append("${")
            continue
        body = _VAR_BODY.fullmatch(m.group(1) or "") if token != "${" else None
        if body is None:
            # The reference text is not echoed: it sits in a value that may be a secret.
            return ctx.add_unexpanded(
                path,
                "invalid ${...} reference (use ${NAME} or ${NAME:-default} with NAME made of "
                "letters, digits and _; write $${ for a literal ${)",
            )
        name, default = body.group(1), body.group(2)
        got = ctx.environ.get(name)
        if got is None or (got == "" and default is not None):
            if default is None:
                return ctx.add_unexpanded(
                    path,
                    f"environment variable {name} is not set "
                    f"(set it, or give a default with ${{{name}:-default}})",
                )
            got = default
        used_env = True
        out.append(got)
    out.append(text[pos:])
    result = "".join(out)
    return _Expanded(result) if used_env else result


# --- scalar validators ------------------------------------------------------------------------
# Each takes (ctx, path, value) and returns the parsed value, or BAD after recording an error.


def _bool(ctx: _Ctx, path: str, value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, _Expanded) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if isinstance(value, str) and len(value) <= 10:
        return ctx.add(path, f"must be true or false (without quotes), got the string {value!r}")
    return ctx.add(path, f"must be true or false (without quotes), got {_describe(value)}")


def _int(ctx: _Ctx, path: str, value: Any, *, minimum: int = 0) -> Any:
    if isinstance(value, _Expanded) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        return ctx.add(path, f"must be a whole number >= {minimum}, got {_describe(value)}")
    if value < minimum:
        return ctx.add(path, f"must be a whole number >= {minimum}, got {value}")
    return value


def _duration_value(value: Any, *, allow_plain: bool) -> float | None:
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


def _duration(ctx: _Ctx, path: str, value: Any) -> Any:
    seconds = _duration_value(value, allow_plain=True)
    if seconds is None:
        shown = repr(value) if isinstance(value, str) else _describe(value)
        return ctx.add(path, f"invalid duration {shown} ({_DURATION_HINT}, or plain seconds)")
    if not math.isfinite(seconds) or seconds <= 0:
        return ctx.add(path, f"must be greater than 0 ({_DURATION_HINT})")
    return seconds


def _string(ctx: _Ctx, path: str, value: Any, what: str) -> Any:
    if not isinstance(value, str):
        return ctx.add(path, f"must be {what} (a string), got {_describe(value)}")
    return str(value).strip()


@functools.lru_cache(maxsize=1)
def _zone_names() -> dict[str, str]:
    return {n.lower(): n for n in available_timezones()}


def _timezone(ctx: _Ctx, path: str, value: Any) -> Any:
    name = _string(ctx, path, value, "an IANA time zone name such as Europe/Berlin")
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


def _regex(ctx: _Ctx, path: str, value: Any) -> Any:
    text = _string(ctx, path, value, "a regular expression")
    if text is BAD:
        return BAD
    try:
        # DOTALL: usernames are untrusted and may contain a newline; `.*` must still match.
        return re.compile(text, re.DOTALL)
    except re.error as e:
        return ctx.add(path, f"invalid regular expression {text!r}: {e}")


def _path(ctx: _Ctx, path: str, value: Any) -> Any:
    text = _string(ctx, path, value, "a file path")
    if text is BAD:
        return BAD
    if not text:
        return ctx.add(path, "is empty (give a file path, or remove the key)")
    return os.path.abspath(os.path.join(ctx.base_dir, os.path.expanduser(text)))


def _readable_file(ctx: _Ctx, path: str, value: Any) -> Any:
    file = _path(ctx, path, value)
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


def _url(ctx: _Ctx, path: str, value: Any) -> Any:
    text = _string(ctx, path, value, "a URL such as https://chat.example.com")
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


def _clock(ctx: _Ctx, path: str, value: Any, *, is_end: bool) -> Any:
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
        shown = repr(value) if isinstance(value, str) else _describe(value)
        return ctx.add(path, f'invalid time {shown} (use "HH:MM" or "HH:MM:SS", e.g. "08:00")')
    h, mi, s = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    if (h, mi, s) == (24, 0, 0):
        if is_end:
            return time.max  # end of day; `end` is exclusive, so this covers up to midnight
        return ctx.add(path, '24:00 is only allowed for "to" (start the day at "00:00")')
    if h > 23 or mi > 59 or s > 59:
        return ctx.add(path, f"invalid time {value!r} (hours 00-23, minutes and seconds 00-59)")
    return time(h, mi, s)


def _day_names(ctx: _Ctx, path: str, text: str) -> set[int] | None:
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


def _days(ctx: _Ctx, path: str, value: Any) -> Any:
    if isinstance(value, str):
        items = [(path, part) for part in value.split(",")]
    elif isinstance(value, list):
        items = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
    else:
        return ctx.add(path, f"must be a list of days such as [mon, tue], got {_describe(value)}")
    if not items:
        return ctx.add(path, "is empty (list days such as [mon-fri], or mon-sun for every day)")
    days: set[int] = set()
    ok = True
    for p, item in items:
        if not isinstance(item, str):
            ctx.add(p, f"must be a day name such as mon, got {_describe(item)}")
            ok = False
            continue
        got = _day_names(ctx, p, item)
        ok = ok and got is not None
        days |= got or set()
    return frozenset(days) if ok else BAD


def _holiday(ctx: _Ctx, path: str, value: Any) -> Any:
    if isinstance(value, datetime):  # a subclass of date: check it first
        return ctx.add(path, "must be a date without a time, e.g. 2026-12-25")
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    shown = repr(value) if isinstance(value, str) else _describe(value)
    return ctx.add(path, f"invalid date {shown} (use YYYY-MM-DD, e.g. 2026-12-25)")


def _window(ctx: _Ctx, path: str, value: Any) -> Any:
    if not isinstance(value, str):
        hint = " (add a unit, e.g. 90m)" if isinstance(value, int | float) else ""
        return ctx.add(path, f"must be a string such as 1h or today, got {_describe(value)}{hint}")
    name = value.strip()
    if name in ("today", "yesterday"):
        return Window(name=name, kind=name)
    seconds = _duration_value(name, allow_plain=False)
    if seconds is None:
        return ctx.add(
            path,
            f"invalid window {name!r} (use a duration such as 90m, 1h, 7d, or today/yesterday)",
        )
    if seconds <= 0 or seconds > MAX_WINDOW_SECONDS:
        return ctx.add(path, f"window {name!r} must be longer than 0 and at most 31d")
    return Window(name=name, kind="duration", seconds=seconds)


# --- sections -----------------------------------------------------------------------------------


def _section(ctx: _Ctx, path: str, value: Any, allowed: Sequence[str]) -> dict[Any, Any] | None:
    """A mapping with only `allowed` keys; reports unknown ones. None (after an error) if not a
    mapping at all."""
    if not isinstance(value, dict):
        ctx.add(path, f"must be a mapping with keys {', '.join(allowed)}; got {_describe(value)}")
        return None
    for key in value:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            ctx.add(_join(path, key), f"unknown key ({hint}allowed: {', '.join(allowed)})")
    return value


def _opt(
    ctx: _Ctx,
    section: Mapping[Any, Any],
    path: str,
    key: str,
    parse: Callable[[_Ctx, str, Any], Any],
    default: Any,
) -> Any:
    """An optional key: absent -> default; present but empty (null) -> error."""
    if key not in section:
        return default
    p = _join(path, key)
    if section[key] is None:
        return ctx.add(p, "has no value (give one, or remove the key to use the default)")
    return parse(ctx, p, section[key])


def _req(
    ctx: _Ctx,
    section: Mapping[Any, Any],
    path: str,
    key: str,
    parse: Callable[[_Ctx, str, Any], Any],
    example: str,
) -> Any:
    p = _join(path, key)
    if section.get(key) is None:
        return ctx.add(p, f"required (e.g. {key}: {example})")
    return parse(ctx, p, section[key])


def _list(ctx: _Ctx, path: str, value: Any, what: str) -> Iterator[tuple[str, Any]]:
    if not isinstance(value, list):
        ctx.add(path, f"must be a list of {what}, got {_describe(value)}")
        return
    for i, item in enumerate(value):
        yield f"{path}[{i}]", item


def _parse_top(ctx: _Ctx, data: Any) -> Config | None:
    if data is None:
        ctx.add("servers", "required (the configuration is empty; list at least one server)")
        return None
    top = _section(ctx, "", data, TOP_KEYS)
    if top is None:
        return None
    poll = _opt(ctx, top, "", "poll_interval", _duration, DEFAULT_POLL_INTERVAL)
    default_staleness = None if poll is BAD else poll * DEFAULT_STALENESS_FACTOR
    staleness = _opt(ctx, top, "", "max_staleness", _duration, default_staleness)
    if BAD not in (poll, staleness) and staleness < poll:
        ctx.add(
            "max_staleness",
            f"must be at least poll_interval ({_fmt(staleness)} < {_fmt(poll)})",
        )
    windows = _opt(ctx, top, "", "windows", _windows, None)
    if windows is None:
        windows = tuple(_window(ctx, "windows", w) for w in DEFAULT_WINDOWS)
    include_open = _opt(ctx, top, "", "windows_include_open_sessions", _bool, True)
    agents = _agents(ctx, top.get("agents"))
    staffing = _opt(ctx, top, "", "staffing", _staffing_spec, None)
    servers = _servers(ctx, top.get("servers"), staffing)
    if ctx.errors:
        return None
    return Config(
        servers=servers,
        poll_interval=poll,
        max_staleness=staleness,
        windows=windows,
        agents=agents,
        windows_include_open_sessions=include_open,
    )


def _fmt(seconds: float) -> str:
    return f"{seconds:g}s"


def _windows(ctx: _Ctx, path: str, value: Any) -> Any:
    items = list(_list(ctx, path, value, "windows such as [1h, 24h, today]"))
    if not isinstance(value, list):
        return BAD
    if not items:
        return ctx.add(path, "is empty (list at least one window, e.g. [1h, today])")
    windows = [_window(ctx, p, v) for p, v in items]
    seen: set[str] = set()
    for (p, _), w in zip(items, windows, strict=True):
        if w is not BAD and w.name in seen:
            ctx.add(p, f"duplicate window {w.name!r} (each window name must be unique)")
        elif w is not BAD:
            seen.add(w.name)
    return BAD if BAD in windows else tuple(windows)


def _agents(ctx: _Ctx, value: Any) -> Any:
    if value is None:  # absent, or `agents:` with nothing under it
        return AgentFilter(include=re.compile(".*", re.DOTALL), exclude=None)
    section = _section(ctx, "agents", value, AGENTS_KEYS)
    if section is None:
        return BAD
    include = _opt(ctx, section, "agents", "include", _regex, re.compile(".*", re.DOTALL))
    if include is not BAD and include.pattern == "":
        include = ctx.add("agents.include", "is empty and would match no agent (use '.*' for all)")
    exclude = _opt(ctx, section, "agents", "exclude", _regex, None)
    if exclude is not None and exclude is not BAD and exclude.pattern == "":
        exclude = None  # "" = exclude nobody
    per_agent = _opt(ctx, section, "agents", "per_agent", _bool, True)
    return AgentFilter(include=include, exclude=exclude, per_agent=per_agent)


# --- staffing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _StaffingSpec:
    """A parsed staffing block whose time zone may still default to its server's."""

    timezone: str | None
    default: int
    rules: tuple[StaffingRule, ...]
    holidays: frozenset[date]

    def resolve(self, server_timezone: str) -> Staffing:
        return Staffing(
            timezone=self.timezone or server_timezone,
            default=self.default,
            rules=self.rules,
            holidays=self.holidays,
        )


def _staffing_spec(ctx: _Ctx, path: str, value: Any) -> Any:
    section = _section(ctx, path, value, STAFFING_KEYS)
    if section is None:
        return BAD
    tz = _opt(ctx, section, path, "timezone", _timezone, None)
    default = _opt(ctx, section, path, "default", _int, 0)
    rules_path = _join(path, "rules")
    rules = tuple(
        _rule(ctx, p, v) for p, v in _list(ctx, rules_path, section.get("rules", []), "rules")
    )
    holidays_path = _join(path, "holidays")
    holidays = [
        _holiday(ctx, p, v)
        for p, v in _list(ctx, holidays_path, section.get("holidays", []), "dates")
    ]
    if BAD in (tz, default) or BAD in rules or BAD in holidays:
        return BAD
    return _StaffingSpec(tz, default, rules, frozenset(holidays))


def _rule(ctx: _Ctx, path: str, value: Any) -> Any:
    section = _section(ctx, path, value, RULE_KEYS)
    if section is None:
        return BAD
    days = _req(ctx, section, path, "days", _days, "[mon-fri]")
    start = _req(ctx, section, path, "from", _clock_start, '"08:00"')
    end = _req(ctx, section, path, "to", _clock_end, '"18:00"')
    agents = _req(ctx, section, path, "agents", _int, "2")
    if BAD in (start, end):
        return BAD
    if end <= start:
        return ctx.add(
            _join(path, "to"),
            f"must be after from ({start:%H:%M} to {end:%H:%M}); a rule cannot cross midnight, "
            'split it into two rules (the first ending at "24:00")',
        )
    if BAD in (days, agents):
        return BAD
    return StaffingRule(days=days, start=start, end=end, agents=agents)


def _clock_start(ctx: _Ctx, path: str, value: Any) -> Any:
    return _clock(ctx, path, value, is_end=False)


def _clock_end(ctx: _Ctx, path: str, value: Any) -> Any:
    return _clock(ctx, path, value, is_end=True)


# --- servers ------------------------------------------------------------------------------------


def _servers(ctx: _Ctx, value: Any, staffing: Any) -> tuple[ServerConfig, ...]:
    if value is None:
        ctx.add(
            "servers", "required (list at least one server with name, url, user_id, auth_token)"
        )
        return ()
    items = list(_list(ctx, "servers", value, "servers"))
    if isinstance(value, list) and not items:
        ctx.add("servers", "is empty (list at least one server)")
    servers = [_server(ctx, p, v, staffing) for p, v in items]
    names: set[str] = set()
    for (p, _), s in zip(items, servers, strict=True):
        if s is not BAD and s.name in names:
            ctx.add(_join(p, "name"), f"duplicate server name {s.name!r} (names must be unique)")
        elif s is not BAD:
            names.add(s.name)
    return tuple(servers)


def _server_name(ctx: _Ctx, path: str, value: Any) -> Any:
    name = _string(ctx, path, value, "a name such as main")
    if name is not BAD and not _SERVER_NAME.fullmatch(name):
        return ctx.add(path, f"invalid name {name!r} (use only letters, digits, _, . and -)")
    return name


def _server(ctx: _Ctx, path: str, value: Any, top_staffing: Any) -> Any:
    section = _section(ctx, path, value, SERVER_KEYS)
    if section is None:
        return BAD
    name = _req(ctx, section, path, "name", _server_name, "main")
    url = _req(ctx, section, path, "url", _url, "https://chat.example.com")
    user_id = _secret(ctx, section, path, "user_id", "${ROCKETCHAT_USER_ID}")
    token = _secret(ctx, section, path, "auth_token", "${ROCKETCHAT_AUTH_TOKEN}")
    tz = _opt(ctx, section, path, "timezone", _timezone, "UTC")
    verify = _opt(ctx, section, path, "verify_tls", _bool, True)
    ca_file = _opt(ctx, section, path, "ca_file", _readable_file, None)
    if verify is False and ca_file not in (None, BAD):
        ca_file = ctx.add(
            _join(path, "ca_file"), "is set but verify_tls is false (remove one of them)"
        )
    timeout = _opt(ctx, section, path, "timeout", _duration, DEFAULT_TIMEOUT)
    spec = top_staffing
    if "staffing" in section:  # an explicit `staffing:` (even empty) replaces the top-level one
        spec = section["staffing"]
        if spec is not None:
            spec = _staffing_spec(ctx, _join(path, "staffing"), spec)
    values = (name, url, user_id, token, tz, verify, ca_file, timeout, spec)
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
        staffing=spec.resolve(tz) if spec is not None else None,
    )


def _secret(ctx: _Ctx, section: Mapping[Any, Any], path: str, key: str, example: str) -> Any:
    """`key` inline or `key_file`: exactly one. The value is never put into a message."""
    file_key = f"{key}_file"
    p, fp = _join(path, key), _join(path, file_key)
    if key in section and file_key in section:
        return ctx.add(p, f"set only one of {key} and {file_key}")
    if key in section:
        value = section[key]
        if not isinstance(value, str):
            return ctx.add(p, f"must be a string (put it in quotes), got {_describe(value)}")
        value = str(value).strip()
        if not value:
            return ctx.add(p, f"is empty (e.g. {key}: {example})")
        ctx.secrets.add(value)
        return Secret(value=value, key=p)
    if file_key not in section:
        return ctx.add(p, f"required (e.g. {key}: {example}, or {file_key}: /path/to/file)")
    file = _path(ctx, fp, section[file_key])
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
