"""Load and validate the YAML configuration into the frozen values of `model.py`.

Every problem is reported as `<key path>: <what is wrong> (<how to fix it>)`, and all problems of a
file are collected and raised together as one `ConfigError` (one per line), so a user fixes a
config in one round instead of one error per restart.

Secrets (user ids, auth tokens, the content of their files) never appear in a message: validators
for those keys never echo values, and as a safety net every message is redacted against all secret
values seen before it is raised.

The work is split along its seams: `yamlfile` (YAML file handling), `expand` (`${VAR}`),
`scalars` (one value each), `sections` (mapping helpers), `servers` (servers and staffing); this
module holds the public entry points and the top-level keys.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from exporter.config import scalars
from exporter.config.errors import BAD, ConfigError, Ctx
from exporter.config.expand import expand
from exporter.config.model import AgentFilter, Config, Departments, Secret, ServiceLevel
from exporter.config.sections import check_mapping, list_items, optional
from exporter.config.servers import parse_servers, staffing_spec
from exporter.config.servicelevel import service_level
from exporter.config.yamlfile import load_yaml
from exporter.privacy import LABEL_MODES, MIN_KEY_LENGTH

__all__ = ["ConfigError", "load_config", "parse_config"]

DEFAULT_POLL_INTERVAL = 60.0
DEFAULT_STALENESS_FACTOR = 5  # max_staleness defaults to this many poll intervals
DEFAULT_WINDOWS = ("1h", "8h", "24h", "7d", "today")


TOP_KEYS = (
    "poll_interval",
    "max_staleness",
    "windows",
    "windows_include_open_sessions",
    "agents",
    "staffing",
    "history_cache_dir",
    "departments",
    "departments_refresh_polls",
    "chats_per_agent",
    "queue_wait_warning",
    "service_level",
    "servers",
)
AGENTS_KEYS = ("include", "exclude", "per_agent", "label", "label_key_file")


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
    data = load_yaml(path, text)
    base_dir = os.path.dirname(os.path.abspath(path))
    return parse_config(data, base_dir=base_dir, environ=environ)


def parse_config(
    data: object, *, base_dir: str = ".", environ: Mapping[str, str] | None = None
) -> Config:
    """Validate already-parsed YAML data. Raises ConfigError listing every problem found."""
    ctx = Ctx(base_dir=base_dir, environ=os.environ if environ is None else environ)
    data = expand(ctx, "", data, 0)
    config = _parse_top(ctx, data)
    ctx.raise_if_any()
    assert config is not None
    return config


# --- top level -----------------------------------------------------------------------------------


def _parse_top(ctx: Ctx, data: Any) -> Config | None:
    if data is None:
        ctx.add("servers", "required (the configuration is empty; list at least one server)")
        return None
    top = check_mapping(ctx, "", data, TOP_KEYS)
    if top is None:
        return None
    poll = optional(ctx, top, "", "poll_interval", scalars.duration, DEFAULT_POLL_INTERVAL)
    default_staleness = None if poll is BAD else poll * DEFAULT_STALENESS_FACTOR
    staleness = optional(ctx, top, "", "max_staleness", scalars.duration, default_staleness)
    if BAD not in (poll, staleness) and staleness < poll:
        ctx.add(
            "max_staleness",
            f"must be at least poll_interval ({_fmt(staleness)} < {_fmt(poll)})",
        )
    windows = optional(ctx, top, "", "windows", _windows, None)
    if windows is None:
        windows = tuple(scalars.window(ctx, "windows", w) for w in DEFAULT_WINDOWS)
    include_open = optional(ctx, top, "", "windows_include_open_sessions", scalars.boolean, True)
    agents = _agents(ctx, top.get("agents"))
    staffing = optional(ctx, top, "", "staffing", staffing_spec, None)
    cache_dir = optional(ctx, top, "", "history_cache_dir", scalars.directory, None)
    departments = _departments(ctx, top)
    # `service_level:` alone (no keys) turns it on with the defaults.
    service = (
        service_level(ctx, "service_level", top["service_level"])
        if ("service_level" in top)
        else ServiceLevel()
    )
    servers = parse_servers(ctx, top.get("servers"), staffing)
    if departments is not BAD and not departments.enabled:
        for i, server in enumerate(servers):
            if server is not BAD and server.department_staffing:
                ctx.add(
                    f"servers[{i}].staffing.rules",
                    "a rule names a department but departments is none (set departments: all "
                    "or list the departments)",
                )
    if ctx.errors:
        return None
    return Config(
        servers=servers,
        poll_interval=poll,
        max_staleness=staleness,
        windows=windows,
        agents=agents,
        windows_include_open_sessions=include_open,
        history_cache_dir=cache_dir,
        departments=departments,
        service_level=service,
    )


_DEPARTMENTS_HINT = "use none, all, or a list of department names or ids such as [Sales, Support]"


def _departments(ctx: Ctx, top: Mapping[Any, Any]) -> Any:
    select = optional(ctx, top, "", "departments", _department_select, "none")
    refresh = optional(ctx, top, "", "departments_refresh_polls", _positive, 10)
    chats = optional(ctx, top, "", "chats_per_agent", _positive, 1)
    wait = optional(ctx, top, "", "queue_wait_warning", scalars.duration, 300.0)
    if BAD in (select, refresh, chats, wait):
        return BAD
    return Departments(select, refresh, chats, wait)


def _positive(ctx: Ctx, path: str, value: Any) -> Any:
    return scalars.integer(ctx, path, value, minimum=1)


def _department_select(ctx: Ctx, path: str, value: Any) -> Any:
    if isinstance(value, str):
        if value.strip() in ("none", "all"):
            return value.strip()
        return ctx.add(path, f"unknown value {value!r} ({_DEPARTMENTS_HINT})")
    if not isinstance(value, list):
        return ctx.add(path, f"must be none, all or a list ({_DEPARTMENTS_HINT})")
    if not value:
        return ctx.add(path, "is an empty list (use none to turn departments off)")
    names = []
    for p, item in list_items(ctx, path, value, "department names or ids"):
        name = scalars.string(ctx, p, item, "a department name or id such as Sales")
        if name is not BAD and not name.strip():
            name = ctx.add(p, "is empty (give a department name or id)")
        names.append(name if name is BAD else name.strip())
    if BAD in names:
        return BAD
    return tuple(dict.fromkeys(names))


def _fmt(seconds: float) -> str:
    return f"{seconds:g}s"


def _windows(ctx: Ctx, path: str, value: Any) -> Any:
    items = list(list_items(ctx, path, value, "windows such as [1h, 24h, today]"))
    if not isinstance(value, list):
        return BAD
    if not items:
        return ctx.add(path, "is empty (list at least one window, e.g. [1h, today])")
    windows = [scalars.window(ctx, p, v) for p, v in items]
    seen: set[str] = set()
    for (p, _), w in zip(items, windows, strict=True):
        if w is not BAD and w.name in seen:
            ctx.add(p, f"duplicate window {w.name!r} (each window name must be unique)")
        elif w is not BAD:
            seen.add(w.name)
    return BAD if BAD in windows else tuple(windows)


def _agents(ctx: Ctx, value: Any) -> Any:
    if value is None:  # absent, or `agents:` with nothing under it
        return AgentFilter(include=re.compile(".*", re.DOTALL), exclude=None)
    section = check_mapping(ctx, "agents", value, AGENTS_KEYS)
    if section is None:
        return BAD
    include = optional(
        ctx, section, "agents", "include", scalars.regex, re.compile(".*", re.DOTALL)
    )
    if include is not BAD and include.pattern == "":
        include = ctx.add("agents.include", "is empty and would match no agent (use '.*' for all)")
    exclude = optional(ctx, section, "agents", "exclude", scalars.regex, None)
    if exclude is not None and exclude is not BAD and exclude.pattern == "":
        exclude = None  # "" = exclude nobody
    per_agent = optional(ctx, section, "agents", "per_agent", scalars.boolean, True)
    label = optional(ctx, section, "agents", "label", _label_mode, "username")
    key = optional(ctx, section, "agents", "label_key_file", _label_key, None)
    if label == "hashed" and key is None:
        key = ctx.add(
            "agents.label_key_file",
            "required for label: hashed "
            f"(e.g. label_key_file: /etc/exporter/agent-label.key; {_KEY_HINT})",
        )
    elif label not in ("hashed", BAD) and key not in (None, BAD):
        key = ctx.add(
            "agents.label_key_file", "is set but label is not hashed (remove one of them)"
        )
    values = (include, exclude, per_agent, label, key)
    if BAD in values:
        return BAD
    return AgentFilter(
        include=include, exclude=exclude, per_agent=per_agent, label=label, label_key=key
    )


_KEY_HINT = "make one with: head -c 32 /dev/urandom | base64 > agent-label.key"


def _label_mode(ctx: Ctx, path: str, value: Any) -> Any:
    mode = scalars.string(ctx, path, value, f"one of {', '.join(LABEL_MODES)}")
    if mode is not BAD and mode not in LABEL_MODES:
        return ctx.add(path, f"unknown label {mode!r} (use one of {', '.join(LABEL_MODES)})")
    return mode


def _label_key(ctx: Ctx, path: str, value: Any) -> Any:
    """The HMAC key of hashed labels: a file (never inline), read now to fail early."""
    file = scalars.file_path(ctx, path, value)
    if file is BAD:
        return BAD
    key = Secret(path=file, key=path)
    try:
        text = key.get()
    except FileNotFoundError:
        return ctx.add(path, f"file not found: {file} ({_KEY_HINT})")
    except UnicodeDecodeError:
        return ctx.add(path, f"{file} is not UTF-8 text ({_KEY_HINT})")
    except OSError as e:
        return ctx.add(path, f"cannot read {file}: {e.strerror}")
    ctx.secrets.add(text)
    if len(text) < MIN_KEY_LENGTH:
        return ctx.add(
            path, f"{file} holds a key shorter than {MIN_KEY_LENGTH} characters ({_KEY_HINT})"
        )
    return key
