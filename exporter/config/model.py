"""The validated configuration, as frozen values. Parsing lives in `loader.py`."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, time
from typing import Literal

from exporter.privacy import LabelMode, agent_labels

WindowKind = Literal["duration", "today", "yesterday"]


@dataclass(frozen=True, slots=True)
class Window:
    """A reporting window: rolling `[now - seconds, now]`, or a server-local calendar day."""

    name: str  # the `window` label, exactly as written in the config ("1h", "7d", "today")
    kind: WindowKind
    seconds: float = 0.0  # only for kind == "duration"


@dataclass(frozen=True, slots=True)
class AgentFilter:
    """The `agents:` section: which agents are exported (by username), and what their `agent`
    label shows (see exporter/privacy.py)."""

    include: re.Pattern[str]
    exclude: re.Pattern[str] | None
    per_agent: bool = True
    label: LabelMode = "username"
    label_key: Secret | None = None  # the HMAC key file for label == "hashed"

    def wants(self, username: str) -> bool:
        if not self.include.fullmatch(username):
            return False
        return not (self.exclude is not None and self.exclude.fullmatch(username))

    def labels(
        self, usernames: Iterable[str], names: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The `agent` label of each username; `names` are display names, for label: name."""
        key = self.label_key.get().encode() if self.label_key is not None else None
        return agent_labels(usernames, self.label, key=key, names=names)


@dataclass(frozen=True, slots=True)
class StaffingRule:
    days: frozenset[int]  # 0 = Monday ... 6 = Sunday (date.weekday())
    start: time  # local wall-clock time in the staffing timezone, inclusive
    end: time  # exclusive; end > start (a rule does not cross midnight)
    agents: int
    department: str | None = None  # a department's name or id; None: the whole team


@dataclass(frozen=True, slots=True)
class Staffing:
    timezone: str  # IANA name
    default: int = 0
    rules: tuple[StaffingRule, ...] = ()
    holidays: frozenset[date] = frozenset()


class Secret:
    """A credential given inline or as a file that is re-read when it changes.

    Never renders its value: repr/str show only where it comes from.
    """

    def __init__(self, *, value: str | None = None, path: str | None = None, key: str = ""):
        if (value is None) == (path is None):
            raise ValueError("exactly one of value or path")
        self._value = value
        self.path = path
        self.key = key  # config key path, for messages
        self._lock = threading.Lock()
        self._stamp: tuple[float, int] | None = None

    def get(self) -> str:
        """The current value; a file is re-read when its mtime or size changed."""
        if self.path is None:
            assert self._value is not None
            return self._value
        with self._lock:
            st = os.stat(self.path)
            stamp = (st.st_mtime, st.st_size)
            if stamp != self._stamp or self._value is None:
                with open(self.path, encoding="utf-8") as f:
                    self._value = f.read().strip()
                self._stamp = stamp
            return self._value

    def __repr__(self) -> str:
        where = f"file {self.path}" if self.path else "inline"
        return f"Secret({self.key}: {where})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and (self._value, self.path) == (other._value, other.path)

    def __hash__(self) -> int:
        return hash(self.path)


@dataclass(frozen=True)
class ServerConfig:
    name: str
    url: str  # without trailing slash
    user_id: Secret
    auth_token: Secret
    timezone: str = "UTC"
    verify_tls: bool = True
    ca_file: str | None = None  # CA bundle for verify_tls (PEM); None = system store
    timeout: float = 10.0
    max_response_size: int = 64 << 20  # bytes of one answer, after decompression
    staffing: Staffing | None = None  # the whole team's (rules without `department`)
    # Per department (name or id as written in the rules): its rules, default 0.
    department_staffing: tuple[tuple[str, Staffing], ...] = ()


@dataclass(frozen=True, slots=True)
class Departments:
    """The `departments` keys: which departments get their own figures (exporter/departments.py).

    `select` is "none" (the default: no department route is asked, /metrics is as without the
    feature), "all", or the names or ids listed.
    """

    select: str | tuple[str, ...] = "none"
    refresh_polls: int = 10  # polls between re-reads of the department list
    chats_per_agent: int = 1  # chat slots of an agent when Rocket.Chat sets no limit
    queue_wait_warning: float = 300.0  # seconds; exported for the oldest-wait alert

    @property
    def enabled(self) -> bool:
        return self.select != "none"


@dataclass(frozen=True, slots=True)
class ServiceLevel:
    """The `service_level` section (docs/service-level.md); absent: off, nothing is asked."""

    enabled: bool = False
    wait_buckets: tuple[float, ...] = (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
    response_buckets: tuple[float, ...] = (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
    duration_buckets: tuple[float, ...] = (60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0)
    per_department: bool = False
    overlap: float = 600.0  # seconds each query reaches back before the newest closed chat
    target_ratio: float = 0.8  # share of chats answered within target_seconds (the alert)
    target_seconds: float = 60.0  # must be one of wait_buckets


@dataclass(frozen=True)
class Config:
    servers: tuple[ServerConfig, ...]
    poll_interval: float = 60.0
    max_staleness: float = 300.0
    windows: tuple[Window, ...] = field(default_factory=tuple)
    agents: AgentFilter = field(
        default_factory=lambda: AgentFilter(include=re.compile(".*", re.DOTALL), exclude=None)
    )
    windows_include_open_sessions: bool = True
    # Final past days are kept here across restarts (exporter/daystore.py); None = off.
    history_cache_dir: str | None = None
    departments: Departments = field(default_factory=Departments)
    service_level: ServiceLevel = field(default_factory=ServiceLevel)

    @property
    def history_days(self) -> int:
        """How many past server-local days the longest window can reach (cache bound)."""
        longest = 0.0
        for w in self.windows:
            longest = max(longest, w.seconds if w.kind == "duration" else 86400.0 * 2)
        # +1: a rolling window starting mid-day touches one more calendar day.
        return int(-(-longest // 86400)) + 1
