"""The simulated Rocket.Chat server: configuration, state and request handling (no sockets)."""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal
from urllib.parse import parse_qsl

from . import protocol as P
from .clock import Clock, SystemClock
from .data import (
    INF,
    PRESENCE_CODES,
    Agent,
    DayTable,
    Generator,
    Profile,
    Session,
    ShiftTable,
    Zone,
    build_day_table,
    random_id,
    state_key,
    trunc_seconds,
)
from .faults import Faults
from .omnichannel import PATHS as OMNI_PATHS
from .omnichannel import SCHEMAS as OMNI_SCHEMAS
from .omnichannel import OmnichannelState, parse_sort
from .rooms import PATHS as ROOMS_PATHS
from .rooms import ROUTE_ROOMS, BadQuery, RoomsState
from .rooms import SCHEMAS as ROOMS_SCHEMAS

ROUTE_HISTORY = "history"
ROUTE_AGENTS = "agents"
ROUTE_AGENTS_STATUS = "agents_status"
ROUTE_INFO = "info"
PATHS = {
    "/api/v1/livechat/analytics/agents/available-for-service-history": ROUTE_HISTORY,
    "/api/v1/livechat/users/agent": ROUTE_AGENTS,
    "/api/v1/livechat/analytics/dashboards/charts/agents-status": ROUTE_AGENTS_STATUS,
    "/api/info": ROUTE_INFO,
    **OMNI_PATHS,  # departments, inquiries, load (simulator/omnichannel.py)
    **ROOMS_PATHS,  # rooms (simulator/rooms.py)
}
ROUTES = (
    ROUTE_HISTORY,
    ROUTE_AGENTS,
    ROUTE_AGENTS_STATUS,
    ROUTE_INFO,
    *OMNI_PATHS.values(),
    ROUTE_ROOMS,
)
ROUTE_PATHS = {v: k for k, v in PATHS.items()}

# The GET query schemas of @rocket.chat/rest-typings (dist/v1/omnichannel.js); checked against the
# published validators by tests/test_rest_schemas.py.
_HISTORY_BASE = {"start": "string", "end": "string", "fullReport": "string"}
_HISTORY_NULLABLE = frozenset({"fullReport"})
HISTORY_SCHEMA_REJECTING = P.QuerySchema(  # 6.x - 7.0
    _HISTORY_BASE, ("start", "end"), nullable=_HISTORY_NULLABLE
)
HISTORY_SCHEMA_ACCEPTING = P.QuerySchema(  # 7.9+
    {**_HISTORY_BASE, "offset": "number", "count": "number", "sort": "string"},
    ("start", "end"),
    nullable=_HISTORY_NULLABLE,
)
# livechat/users/:type validates GET with isLivechatUsersManagerGETProps, whatever the :type.
_AGENTS_PROPERTIES = {
    "text": "string",
    "onlyAvailable": "boolean",
    "excludeId": "string",
    "showIdleAgents": "boolean",
    "count": "number",
    "offset": "number",
    "sort": "string",
    "query": "string",
    "fields": "string",
}
AGENTS_SCHEMA = P.QuerySchema(_AGENTS_PROPERTIES, nullable=frozenset(_AGENTS_PROPERTIES))
# additionalProperties: true ("FE is sending start/end params")
AGENTS_STATUS_SCHEMA = P.QuerySchema(
    {"departmentId": "string"}, additional=True, nullable=frozenset({"departmentId"})
)

_CACHE_BUDGET = 64 * 1024 * 1024  # bytes of rendered history pages kept


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything fixed at start. Runtime switches live on `Simulator` itself."""

    agents: int = 50  # generated agents; 0 = scripted mode (add_agent / add_session)
    seed: int = 1
    timezone: str = "UTC"  # the Rocket.Chat server process's time zone (days are local)
    pagination: Literal["accepted", "rejected"] = "accepted"  # history offset/count (7.9+ / 7.0)
    licence: bool = True  # enterprise licence present (history route usable)
    unlicensed: Literal["new", "old"] = "new"  # new: 400 enterprise body; old: 404 route
    rate_limit: int = 10  # calls per window per route+method+client; 0 disables
    rate_window: float = 60.0  # seconds
    rate_limit_bypass: bool = False  # the user holds api-bypass-rate-limit (e.g. admin)
    days: int = 7  # generated history before the starting day
    intervals_per_day: int = 12  # sessions per shift (jittered +-2 when >= 4)
    off_day_rate: float = 0.2  # chance an agent does not work a given day
    double_stop_rate: float = 0.0  # chance a generated session hits the double-stop defect
    user_id: str = "sim-user"
    auth_token: str = "sim-token"
    version: str | None = None  # /api/info; default follows `pagination` (7.10.0 / 7.0.0)
    default_count: int = 50  # API_Default_Count
    upper_count_limit: int = 100  # API_Upper_Count_Limit
    allow_infinite_count: bool = True  # API_Allow_Infinite_Count
    auth_style: Literal["new", "old"] = "new"  # old: 401 body with only status+message
    forbidden_style: Literal["permissions", "unauthorized"] = "permissions"
    forbidden: frozenset[str] = field(default_factory=frozenset)  # route names answering 403
    agents_status_cache: float = 5.0  # seconds the agents-status chart is memoized
    # Rocket.Chat creates the day's document when a session starts, so an agent whose only
    # session is still open is listed with 0 s and serviceHistory null. False: listed only
    # once something closed (simpler, not faithful).
    open_documents: bool = True

    def __post_init__(self) -> None:
        def bad(name: str, fix: str) -> None:
            raise ValueError(f"SimulatorConfig.{name}={getattr(self, name)!r}: {fix}")

        if self.agents < 0:
            bad("agents", "use 0 or more")
        if self.pagination not in ("accepted", "rejected"):
            bad("pagination", "use 'accepted' or 'rejected'")
        if self.unlicensed not in ("new", "old"):
            bad("unlicensed", "use 'new' or 'old'")
        if self.rate_limit < 0 or self.rate_window <= 0:
            bad("rate_limit", "use a limit >= 0 (0 disables) and rate_window > 0")
        if self.days < 0:
            bad("days", "use 0 or more")
        if self.intervals_per_day < 1:
            bad("intervals_per_day", "use 1 or more")
        if not 0 <= self.off_day_rate < 1:
            bad("off_day_rate", "use a probability in [0, 1)")
        if not 0 <= self.double_stop_rate <= 1:
            bad("double_stop_rate", "use a probability in [0, 1]")
        if self.default_count <= 0 or self.upper_count_limit <= 0:
            bad("default_count", "default_count and upper_count_limit must be > 0")
        if self.auth_style not in ("new", "old"):
            bad("auth_style", "use 'new' or 'old'")
        if self.forbidden_style not in ("permissions", "unauthorized"):
            bad("forbidden_style", "use 'permissions' or 'unauthorized'")
        unknown = set(self.forbidden) - set(ROUTES)
        if unknown:
            bad("forbidden", f"route names are {', '.join(ROUTES)}")
        try:
            Zone(self.timezone)
        except Exception:
            bad("timezone", "use an IANA time zone name such as 'UTC' or 'Asia/Kolkata'")

    @property
    def effective_version(self) -> str:
        if self.version:
            return self.version
        return "7.10.0" if self.pagination == "accepted" else "7.0.0"


@dataclass(slots=True)
class Reply:
    """What to send. status None: close the connection without answering."""

    status: int | None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    cut: bool = False  # send the headers and half the body, then close


def _dumps(obj: Any) -> bytes:
    return _utf8(json.dumps(obj, separators=(",", ":"), ensure_ascii=False))


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _utf8(text: str) -> bytes:
    """JSON text as UTF-8, a lone surrogate escaped as `\\udXXX` like Node's JSON.stringify
    (well-formed since ES2019): a hostile username reaches the exporter exactly as from
    Rocket.Chat."""
    try:
        return text.encode()
    except UnicodeEncodeError:
        return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text).encode()


def _iso(ms: int, naive: bool = False) -> str:
    s, r = divmod(ms, 1000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s))
    return f"{base}.{r:03d}" if naive else f"{base}.{r:03d}Z"


def _to_ms(t: float | datetime) -> int:
    if isinstance(t, datetime):
        if t.tzinfo is None:
            raise ValueError("use an aware datetime (tzinfo set) or unix seconds")
        return round(t.timestamp() * 1000)
    return round(float(t) * 1000)


Row = tuple[str, int, "list[tuple[int, int]] | None"]  # username, seconds, entries (None: null)


class Simulator:
    """A Rocket.Chat server's omnichannel availability routes, in memory. Thread-safe."""

    def __init__(self, config: SimulatorConfig | None = None, clock: Clock | None = None):
        self.config = config or SimulatorConfig()
        self.clock: Clock = clock or SystemClock()
        self.zone = Zone(self.config.timezone)
        self.faults = Faults(self.config.seed)
        self._lock = threading.RLock()
        self._counts: Counter[tuple[str, int | str]] = Counter()
        self._count_lock = threading.Lock()
        now = self._now_ms()
        self._limiter = P.RateLimiter(self.config.rate_limit, self.config.rate_window, now)
        self._licence = self.config.licence
        self._forbidden = set(self.config.forbidden)
        self._credentials: tuple[str, str] | None = (self.config.user_id, self.config.auth_token)
        self._gen = Generator(
            self.config.seed,
            self.config.intervals_per_day,
            self.config.off_day_rate,
            self.config.double_stop_rate,
        )
        self._id_rng = random.Random(f"ids:{self.config.seed}")
        self._first_shift_day = self.zone.day_of(now) - self.config.days
        generated, profiles = self._gen.agents(self.config.agents)
        self._profiles: list[Profile] = profiles  # by generator row
        self._gen_row: dict[str, int] = {a.id: i for i, a in enumerate(generated)}
        self._scripted: dict[str, list[Session]] = {}
        self._overrides: dict[str, tuple[str | None, str | None]] = {}
        self._shift_tables: dict[int, ShiftTable] = {}
        # memoized like Rocket.Chat's mem(maxAge 5 s): expires with the clock, nothing else
        self._chart_cache: dict[str, tuple[int, bytes]] = {}
        self.omni = OmnichannelState()  # departments, queue, load: scripted by tests
        self.rooms = RoomsState()  # livechat rooms (service level): scripted or generated
        self.unregistered: set[str] = set()  # route names answering 404 (an older server)
        self._set_directory(generated)

    # ------------------------------------------------------------------ time & switches

    def _now_ms(self) -> int:
        return round(self.clock.now() * 1000)

    @property
    def licence(self) -> bool:
        return self._licence

    @licence.setter
    def licence(self, on: bool) -> None:
        self._licence = bool(on)

    def forbid(self, route: str, forbidden: bool = True) -> None:
        """Make `route` (one of ROUTES: "history", "agents", "agents_status", "departments",
        "inquiries", "load") answer 403 (or stop doing so)."""
        if route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; choose from {', '.join(ROUTES)}")
        with self._lock:
            (self._forbidden.add if forbidden else self._forbidden.discard)(route)

    def set_credentials(self, user_id: str, auth_token: str) -> None:
        with self._lock:
            self._credentials = (user_id, auth_token)

    def revoke_token(self) -> None:
        """Every authenticated route answers 401 until set_credentials()."""
        with self._lock:
            self._credentials = None

    def set_rate_limit(self, limit: int, window: float | None = None) -> None:
        """Change the limiter (0 disables); counters restart."""
        window = self.config.rate_window if window is None else window
        self._limiter.configure(limit, window, self._now_ms())

    # ------------------------------------------------------------------ request counters

    @property
    def requests(self) -> Counter[tuple[str, int | str]]:
        """A copy of the per (route name, status) request counts; status "dropped" when the
        connection was closed without an answer. Unknown paths count under "unknown"."""
        with self._count_lock:
            return Counter(self._counts)

    def request_total(self, route: str | None = None) -> int:
        with self._count_lock:
            return sum(n for (r, _), n in self._counts.items() if route in (None, r))

    def reset_requests(self) -> None:
        with self._count_lock:
            self._counts.clear()

    def _count(self, route: str, status: int | str) -> None:
        with self._count_lock:
            self._counts[(route, status)] += 1

    # ------------------------------------------------------------------ directory & scripting

    def _set_directory(self, agents: Iterable[Agent]) -> None:
        with self._lock:
            self._agents: list[Agent] = sorted(agents, key=lambda a: a.username)
            self._index = {a.username: i for i, a in enumerate(self._agents)}
            if len(self._index) != len(self._agents):
                raise ValueError("usernames must be unique")
            self._by_id = {a.id: a for a in self._agents}
            self._invalidate()

    def _invalidate(self) -> None:
        self._version = getattr(self, "_version", 0) + 1
        self._day_tables: dict[int, DayTable] = {}
        self._page_cache: OrderedDict[tuple, bytes] = OrderedDict()
        self._page_cache_bytes = 0
        self._selection_cache: tuple[tuple, list[int]] | None = None
        self._live_cache: tuple[tuple, list[tuple[str, str]]] | None = None
        self._users_cache: tuple[tuple, list[int]] | None = None
        starts = [s.start for ss in self._scripted.values() for s in ss]
        ends = [s.end for ss in self._scripted.values() for s in ss if s.end is not None]
        self._scripted_events = sorted(starts + ends)
        lo = [self._first_shift_day] if self._gen_row else []
        lo.extend(self.zone.day_of(s) for s in starts)
        self._lo_day = min(lo) if lo else None

    @property
    def agents(self) -> list[Agent]:
        with self._lock:
            return list(self._agents)

    def agent(self, username: str) -> Agent:
        with self._lock:
            return self._agents[self._index[username]]

    def add_agent(
        self, username: str, name: str | None = None, *, id: str | None = None, email: str = ""
    ) -> Agent:
        with self._lock:
            if username in self._index:
                raise ValueError(f"agent {username!r} exists")
            agent = Agent(id or random_id(self._id_rng), username, name or username, email)
            self._set_directory([*self._agents, agent])
            return agent

    def set_agents(self, agents: Iterable[str | Agent]) -> None:
        """Replace the directory (scripted mode). Known usernames keep their id and sessions;
        generated sessions are dropped."""
        with self._lock:
            new = []
            for a in agents:
                if isinstance(a, str):
                    old = self._agents[self._index[a]] if a in self._index else None
                    a = old or Agent(random_id(self._id_rng), a, a)
                new.append(a)
            self._gen_row = {}
            self._shift_tables = {}
            self._set_directory(new)

    def remove_agent(self, username: str) -> None:
        """Delete the user: gone from users/agent, and its activity documents stop matching
        (Rocket.Chat's $lookup on users drops them)."""
        with self._lock:
            self._set_directory([a for a in self._agents if a.username != username])

    def clear(self) -> None:
        """No agents, no activity at all."""
        with self._lock:
            self._scripted = {}
            self._overrides = {}
            self.set_agents([])

    def clear_generated(self) -> None:
        """Drop generated agents and their sessions; keep scripted agents and sessions."""
        with self._lock:
            keep = [a for a in self._agents if a.id not in self._gen_row]
            self._gen_row = {}
            self._shift_tables = {}
            self._set_directory(keep)

    def add_session(
        self,
        username: str,
        start: float | datetime,
        end: float | datetime | None = None,
        *,
        presence: str = "online",
        double_stop: float = 0.0,
    ) -> None:
        """Agent `username` (created if unknown) is available from `start` until `end`
        (unix seconds or aware datetimes; None: still open). `presence` is its presence while
        available; `double_stop` > 0 processes the stop twice, that many seconds apart."""
        if presence not in PRESENCE_CODES:
            raise ValueError(f"presence must be one of {', '.join(PRESENCE_CODES)}")
        s = _to_ms(start)
        e = None if end is None else _to_ms(end)
        if e is not None and e < s:
            raise ValueError("end must not be before start")
        with self._lock:
            if username not in self._index:
                self.add_agent(username)
            agent = self._agents[self._index[username]]
            sess = Session(s, e, PRESENCE_CODES.index(presence), round(double_stop * 1000))
            self._scripted.setdefault(agent.id, []).append(sess)
            self._invalidate()

    def close_session(self, username: str, end: float | datetime) -> None:
        """End the agent's open scripted session at `end`."""
        with self._lock:
            agent = self._agents[self._index[username]]
            sessions = self._scripted.get(agent.id, [])
            for k, sess in enumerate(sessions):
                if sess.end is None:
                    sessions[k] = replace(sess, end=_to_ms(end))
                    self._invalidate()
                    return
            raise ValueError(f"{username!r} has no open scripted session")

    def set_live(
        self, username: str, *, status: str | None = None, status_livechat: str | None = None
    ) -> None:
        """Override the live presence/statusLivechat (None: back to what sessions imply)."""
        with self._lock:
            agent = self._agents[self._index[username]]
            if status is None and status_livechat is None:
                self._overrides.pop(agent.id, None)
            else:
                self._overrides[agent.id] = (status, status_livechat)
            self._live_cache = None
            self._users_cache = None

    # ------------------------------------------------------------------ ground truth (Python)

    def sessions(
        self, username: str, since: float, until: float
    ) -> list[tuple[float, float | None]]:
        """The agent's real availability spans overlapping [since, until] (unix seconds),
        before Rocket.Chat's recording artefacts; end None = open forever."""
        lo, hi = _to_ms(since), _to_ms(until)
        with self._lock:
            agent = self._agents[self._index[username]]
            out = [s for s in self._scripted.get(agent.id, [])]
            row = self._gen_row.get(agent.id)
            if row is not None:
                for day in range(self.zone.day_of(lo) - 1, self.zone.day_of(hi) + 1):
                    if day >= self._first_shift_day:
                        out.extend(self._shift_table(day).sessions(row))
        res = [s for s in out if s.start <= hi and (s.end is None or s.end >= lo)]
        res.sort(key=lambda s: s.start)
        return [(s.start / 1000, None if s.end is None else s.end / 1000) for s in res]

    def live(self, username: str) -> tuple[str, str]:
        """(status, statusLivechat) of the agent now."""
        with self._lock:
            return self._live_snapshot(self._now_ms())[self._index[username]]

    # ------------------------------------------------------------------ tables

    def warm(self) -> None:
        """Build every day's tables up to today now, so the first requests are not slow
        (about 1 s per day at 20,000 agents)."""
        with self._lock:
            if self._lo_day is None:
                return
            for day in range(self._lo_day, self.zone.day_of(self._now_ms()) + 1):
                self._day_table(day)

    def _shift_table(self, day: int) -> ShiftTable:
        tab = self._shift_tables.get(day)
        if tab is None:
            tab = self._gen.shift_table(self._profiles, day, self.zone)
            self._shift_tables[day] = tab
        return tab

    def _day_table(self, day: int) -> DayTable:
        tab = self._day_tables.get(day)
        if tab is None:
            shifts = []
            if self._gen_row:
                shifts = [
                    self._shift_table(x) for x in (day - 1, day) if x >= self._first_shift_day
                ]
            gen_index = [self._gen_row.get(a.id) for a in self._agents]
            scripted = [self._scripted.get(a.id) for a in self._agents]
            tab = build_day_table(
                day, self.zone, gen_index, shifts, scripted, self.config.open_documents
            )
            self._day_tables[day] = tab
        return tab

    # ------------------------------------------------------------------ history

    def history_rows(
        self, first_day: int, last_day: int, now_ms: int, offset: int = 0, count: int = 0
    ) -> tuple[int, list[Row], tuple]:
        """(total, page rows, cache key) of the aggregation for days first..last at now."""
        with self._lock:
            if self._lo_day is None or first_day > last_day:
                return 0, [], (self._version, "empty")
            lo = max(first_day, self._lo_day)
            hi = min(last_day, self.zone.day_of(now_ms))
            tables = [self._day_table(d) for d in range(lo, hi + 1)]
            key = (self._version, lo, hi, tuple(state_key(t.events, now_ms) for t in tables))
            if self._selection_cache is not None and self._selection_cache[0] == key:
                selected = self._selection_cache[1]
            else:
                selected = self._select(tables, now_ms)
                self._selection_cache = (key, selected)
            page = selected[offset:] if offset else selected
            if count:
                page = page[:count]
            rows: list[Row] = []
            for i in page:
                secs = 0
                entries: list[tuple[int, int]] | None = None
                seen_doc = False
                for t in tables:
                    if t.created[i] > now_ms:
                        continue
                    secs += t.seconds(i, now_ms)
                    if not seen_doc:  # $first: the earliest day's serviceHistory only
                        seen_doc = True
                        entries = t.entries(i, now_ms) or None
                rows.append((self._agents[i].username, secs, entries))
            return len(selected), rows, key

    @staticmethod
    def _select(tables: list[DayTable], now_ms: int) -> list[int]:
        if not tables:
            return []
        if len(tables) == 1:
            return [i for i, c in enumerate(tables[0].created) if c <= now_ms]
        n = len(tables[0].created)
        hit = [False] * n
        for t in tables:
            for i, c in enumerate(t.created):
                if c <= now_ms:
                    hit[i] = True
        return [i for i in range(n) if hit[i]]

    def _history_body(self, q: dict[str, Any], start: P.JsDate, end: P.JsDate) -> bytes:
        cfg = self.config
        offset, count = P.pagination(
            q, cfg.default_count, cfg.upper_count_limit, cfg.allow_infinite_count
        )
        full = q.get("fullReport") == "true"
        now = self._now_ms()
        drift = self.faults.drift
        with self._lock:
            total, rows, key = self.history_rows(start.local_day, end.local_day, now, offset, count)
            ckey = (key, offset, count, full, drift)
            body = self._page_cache.get(ckey)
            if body is not None:
                self._page_cache.move_to_end(ckey)
                return body
        body = (
            _render_history_drift(rows, total, offset, full, drift)
            if drift
            else _render_history(rows, total, offset, full)
        )
        with self._lock:
            if key[0] == self._version and ckey not in self._page_cache:
                self._page_cache[ckey] = body
                self._page_cache_bytes += len(body)
                while self._page_cache_bytes > _CACHE_BUDGET and self._page_cache:
                    _, old = self._page_cache.popitem(last=False)
                    self._page_cache_bytes -= len(old)
        return body

    # ------------------------------------------------------------------ live status

    def _live_snapshot(self, now_ms: int) -> list[tuple[str, str]]:
        today = self.zone.day_of(now_ms)
        shifts = []
        if self._gen_row:
            shifts = [
                (x, self._shift_table(x)) for x in (today - 1, today) if x >= self._first_shift_day
            ]
        key = (
            self._version,
            tuple((x, state_key(t.events, now_ms)) for x, t in shifts),
            state_key(self._scripted_events, now_ms),
            len(self._overrides),
            tuple(sorted(self._overrides.items())),
        )
        if self._live_cache is not None and self._live_cache[0] == key:
            return self._live_cache[1]
        out = [self._live_of(a, now_ms, shifts) for a in self._agents]
        self._live_cache = (key, out)
        return out

    def _live_of(
        self, agent: Agent, now: int, shifts: list[tuple[int, ShiftTable]]
    ) -> tuple[str, str]:
        status, livechat = "offline", "not-available"
        for s in self._scripted.get(agent.id, ()):
            if s.start <= now and (s.end is None or now < s.end):
                status, livechat = PRESENCE_CODES[s.presence], "available"
                break
        else:
            row = self._gen_row.get(agent.id)
            if row is not None:
                status, livechat = self._generated_live(row, now, shifts)
        ov = self._overrides.get(agent.id)
        if ov is not None:
            status = ov[0] or status
            livechat = ov[1] or livechat
        return status, livechat

    def _generated_live(
        self, row: int, now: int, shifts: list[tuple[int, ShiftTable]]
    ) -> tuple[str, str]:
        for _, tab in shifts:
            d = tab.data
            lo, hi = 4 * tab.offsets[row], 4 * tab.offsets[row + 1]
            if lo == hi or not (d[lo] <= now < d[hi - 3]):
                continue
            for k in range(lo, hi, 4):
                if d[k] <= now < d[k + 1]:
                    return PRESENCE_CODES[d[k + 2]], "available"
                if now < d[k]:  # on a break: online (or away), not taking chats
                    return ("away" if d[k + 2] == 1 else "online"), "not-available"
        if self._profiles[row].leaves_available:
            return "offline", "available"
        return "offline", "not-available"

    # ------------------------------------------------------------------ HTTP-level handling

    def handle(
        self, method: str, target: str, headers: dict[str, str], client: str = "127.0.0.1"
    ) -> Reply:
        """Answer one request. `headers` keys must be lower-case."""
        path, _, qs = target.partition("?")
        route = PATHS.get(path.rstrip("/") or "/")
        name = route or "unknown"
        fault = self.faults.take(name) if route else None
        if self.faults.latency:
            time.sleep(self.faults.latency)
        if fault == "drop":
            self._count(name, "dropped")
            return Reply(None)
        if fault == "error":
            status = self.faults.error_status
            reply = Reply(status, _dumps(P.BODY_5XX.get(status, P.BODY_5XX[500])))
        elif fault == "html":
            reply = Reply(502, P.HTML_502.encode(), content_type="text/html")
        elif route is None or method not in ("GET", "HEAD"):
            reply = Reply(404, _dumps(P.BODY_NOT_FOUND))
        else:
            reply = self._dispatch(route, qs, headers, client)
            if fault == "truncate":
                reply.body = reply.body[: len(reply.body) // 2]
            elif fault == "drop_mid_body":
                reply.cut = True
        self._count(name, reply.status if reply.status is not None else "dropped")
        return reply

    def _dispatch(self, route: str, qs: str, headers: dict[str, str], client: str) -> Reply:
        if route in self.unregistered:
            return Reply(404, _dumps(P.BODY_NOT_FOUND))
        if route == ROUTE_INFO:
            return Reply(200, _dumps({"version": self.config.effective_version, "success": True}))
        if route == ROUTE_HISTORY and not self._licence:
            if self.config.unlicensed == "old":  # the route is not even registered
                return Reply(404, _dumps(P.BODY_NOT_FOUND))
            return Reply(400, _dumps(P.BODY_ENTERPRISE))  # licence middleware, before auth
        if not self._authenticated(headers):
            body = P.BODY_401 if self.config.auth_style == "new" else P.BODY_401_OLD
            return Reply(401, _dumps(body))
        rate_headers: dict[str, str] = {}
        if not self.config.rate_limit_bypass:
            decision = self._limiter.hit(ROUTE_PATHS[route] + "get", client, self._now_ms())
            if decision is not None:
                rate_headers = decision.headers
                if not decision.allowed:
                    body = P.too_many_requests(decision.wait_seconds)
                    return Reply(429, _dumps(body), rate_headers)
        reply = self._route(route, _parse_query(qs))
        reply.headers.update(rate_headers)
        return reply

    def _authenticated(self, headers: dict[str, str]) -> bool:
        creds = self._credentials
        return (
            creds is not None
            and (
                headers.get("x-user-id"),
                headers.get("x-auth-token"),
            )
            == creds
        )

    def _route(self, route: str, query: dict[str, str | list[str]]) -> Reply:
        if route == ROUTE_HISTORY:
            schema = (
                HISTORY_SCHEMA_ACCEPTING
                if self.config.pagination == "accepted"
                else HISTORY_SCHEMA_REJECTING
            )
        elif route == ROUTE_AGENTS:
            schema = AGENTS_SCHEMA
        elif route in OMNI_SCHEMAS:
            schema = OMNI_SCHEMAS[route]
        elif route == ROUTE_ROOMS:
            schema = ROOMS_SCHEMAS[_rooms_schema(self.config.effective_version)]
        else:
            schema = AGENTS_STATUS_SCHEMA
        error, q = P.validate(schema, query)
        if error is not None:
            return Reply(400, _dumps(P.invalid_params(error)))
        if route in self._forbidden:
            body = P.BODY_403 if self.config.forbidden_style == "permissions" else P.BODY_403_OLD
            return Reply(403, _dumps(body))
        if route == ROUTE_HISTORY:
            return self._history(q)
        if route == ROUTE_AGENTS:
            return self._users(q)
        if route in OMNI_SCHEMAS or route == ROUTE_ROOMS:
            return self._omnichannel(route, q)
        return self._agents_status(q)

    def _omnichannel(self, route: str, q: dict[str, Any]) -> Reply:
        cfg = self.config
        page = P.pagination(q, cfg.default_count, cfg.upper_count_limit, cfg.allow_infinite_count)
        bad = _negative_paging(q)
        if bad:
            return Reply(400, _dumps(P.failure(bad)))
        try:
            sort = parse_sort(q.get("sort"))
        except ValueError:
            body = {
                "success": False,
                "error": f'Invalid sort parameter provided "{q.get("sort")}" [error-invalid-sort]',
                "errorType": "error-invalid-sort",
            }
            return Reply(400, _dumps(body))
        if route == "departments":
            body = self.omni.departments_body(q, page)
        elif route == "inquiries":
            body = self.omni.inquiries_body(q, page, sort, self._now_ms())
        elif route == ROUTE_ROOMS:
            try:
                body = self.rooms.body(q, page, sort, self._now_ms(), self.zone)
            except BadQuery as exc:
                return Reply(400, _dumps(P.failure(str(exc))))
        else:
            with self._lock:
                now = self._now_ms()
                live = self._live_snapshot(now)
                by_user = {a.username: (a.id, *live[i]) for i, a in enumerate(self._agents)}
            body = self.omni.load_body(q, page, by_user, now)
        return Reply(200, _dumps({**body, "success": True}))

    def _history(self, q: dict[str, Any]) -> Reply:
        parsed = []
        for name in ("start", "end"):
            d = P.parse_js_date(q[name], self.zone)
            if d is None:
                msg = f'The "{name}" query parameter must be a valid date.'
                return Reply(400, _dumps(P.failure(msg)))
            parsed.append(d)
        start, end = parsed
        bad = _negative_paging(q)
        if bad:
            return Reply(400, _dumps(P.failure(bad)))
        return Reply(200, self._history_body(q, start, end))

    def _users(self, q: dict[str, Any]) -> Reply:
        cfg = self.config
        offset, count = P.pagination(
            q, cfg.default_count, cfg.upper_count_limit, cfg.allow_infinite_count
        )
        bad = _negative_paging(q)
        if bad:
            return Reply(400, _dumps(P.failure(bad)))
        sort_raw = q.get("sort")
        try:
            sort = _parse_sort(sort_raw) if sort_raw else [("name", 1)]
        except ValueError:
            body = {
                "success": False,
                "error": f'Invalid sort parameter provided "{sort_raw}" [error-invalid-sort]',
                "errorType": "error-invalid-sort",
            }
            return Reply(400, _dumps(body))
        with self._lock:
            now = self._now_ms()
            live = self._live_snapshot(now)
            key = (
                self._live_cache[0] if self._live_cache else None,
                q.get("text"),
                q.get("onlyAvailable"),
                q.get("excludeId"),
                q.get("showIdleAgents"),
                tuple(sort),
            )
            if self._users_cache is not None and self._users_cache[0] == key:
                chosen = self._users_cache[1]
            else:
                chosen = self._filter_users(q, sort, live)
                self._users_cache = (key, chosen)
            page = chosen[offset:] if offset else chosen
            if count:
                page = page[:count]
            users = [
                {**_user_json(self._agents[i], live[i]), **self.omni.user_fields(a.username)}
                for i in page
                for a in (self._agents[i],)
            ]
            total = len(chosen)
        body = {"users": users, "count": len(users), "offset": offset, "total": total}
        body["success"] = True
        return Reply(200, _dumps(body))

    def _filter_users(
        self, q: dict[str, Any], sort: list[tuple[str, int]], live: list[tuple[str, str]]
    ) -> list[int]:
        text = q.get("text")
        rx = re.compile(re.escape(text), re.IGNORECASE) if text else None
        only_available = q.get("onlyAvailable") is True
        exclude = q.get("excludeId")
        hide_idle = q.get("showIdleAgents") is False
        chosen = []
        for i, a in enumerate(self._agents):
            status, livechat = live[i]
            if rx and not (rx.search(a.username) or rx.search(a.name) or rx.search(a.email)):
                continue
            if only_available and livechat != "available":
                continue
            if exclude and a.id == exclude:
                continue
            if hide_idle and status == "offline":
                continue
            chosen.append(i)
        fields = {
            "_id": lambda i: self._agents[i].id,
            "username": lambda i: self._agents[i].username,
            "name": lambda i: self._agents[i].name,
            "status": lambda i: live[i][0],
            "statusLivechat": lambda i: live[i][1],
        }
        for fname, direction in reversed(sort):
            getter = fields.get(fname)
            if getter is not None:
                chosen.sort(key=getter, reverse=direction < 0)
        return chosen

    def _agents_status(self, q: dict[str, Any]) -> Reply:
        dept = q.get("departmentId") or ""
        now = self._now_ms()
        with self._lock:
            hit = self._chart_cache.get(dept)
            if hit is not None and now < hit[0]:
                return Reply(200, hit[1])
            counts = {"offline": 0, "away": 0, "busy": 0, "available": 0}
            live = self._live_snapshot(now) if not dept else []  # no departments are modelled
            for status, livechat in live:
                if livechat == "not-available" or (status == "offline" and livechat == "available"):
                    counts["offline"] += 1
                elif livechat == "available" and status in ("away", "busy"):
                    counts[status] += 1
                elif livechat == "available" and status == "online":
                    counts["available"] += 1
            # no agent at all: the aggregation yields nothing and the route answers bare success
            body = _dumps({**counts, "success": True} if live else {"success": True})
            ttl = round(self.config.agents_status_cache * 1000)
            if ttl > 0:
                self._chart_cache[dept] = (now + ttl, body)
        return Reply(200, body)


# ---------------------------------------------------------------------- helpers


def _parse_query(qs: str) -> dict[str, str | list[str]]:
    out: dict[str, str | list[str]] = {}
    for k, v in parse_qsl(qs, keep_blank_values=True):
        if k in out:
            prev = out[k]
            out[k] = [*prev, v] if isinstance(prev, list) else [prev, v]
        else:
            out[k] = v
    return out


def _rooms_schema(version: str) -> str:
    """Which published livechat/rooms schema a version has (7.10.0 added arrays)."""
    parts = [int(p) if p.isdigit() else 0 for p in version.split(".")[:2]]
    return "7.10.0" if tuple(parts) >= (7, 10) else "7.0.0"


def _negative_paging(q: dict[str, Any]) -> str | None:
    for name, stage in (("count", "$limit"), ("offset", "$skip")):
        v = q.get(name)
        if isinstance(v, float) and v < 0:
            return f"Expected a non-negative number in: {stage}: {int(v)}"
    return None


def _parse_sort(raw: str) -> list[tuple[str, int]]:
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(raw) from e
    if not isinstance(obj, dict):
        raise ValueError(raw)
    return [(k, -1 if v in (-1, "-1", "desc") else 1) for k, v in obj.items()]


def _user_json(agent: Agent, live: tuple[str, str]) -> dict[str, Any]:
    u: dict[str, Any] = {
        "_id": agent.id,
        "username": agent.username,
        "name": agent.name,
        "status": live[0],
        "statusLivechat": live[1],
    }
    if agent.email:
        u["emails"] = [{"address": agent.email, "verified": False}]
    return u


def _render_history(rows: list[Row], total: int, offset: int, full: bool) -> bytes:
    parts = []
    dumps = json.dumps
    for username, secs, entries in rows:
        if full:
            if entries is None:
                sh = "null"
            else:
                sh = ",".join(
                    f'{{"startedAt":"{_iso(s)}","stoppedAt":"{_iso(e)}"}}' for s, e in entries
                )
                sh = f"[{sh}]"
            parts.append(
                f'{{"serviceHistory":{sh},"availableTimeInSeconds":{secs},'
                f'"username":{dumps(username, ensure_ascii=False)}}}'
            )
        else:
            parts.append(
                f'{{"availableTimeInSeconds":{secs},'
                f'"username":{dumps(username, ensure_ascii=False)}}}'
            )
    body = (
        f'{{"agents":[{",".join(parts)}],"count":{len(rows)},"offset":{offset},'
        f'"total":{total},"success":true}}'
    )
    return _utf8(body)


def _render_history_drift(
    rows: list[Row], total: int, offset: int, full: bool, drift: frozenset[str]
) -> bytes:
    naive = "naive_dates" in drift
    agents = []
    for pos, (username, secs, entries) in enumerate(rows):
        a: dict[str, Any] = {}
        hist = None if entries is None else [list(e) for e in entries]
        if "double_stop" in drift and hist:
            s, e = hist[0]
            hist.insert(1, [s, e + 1500])
            secs += trunc_seconds(e + 1500 - s)
        if full:
            if hist is None:
                a["serviceHistory"] = None
            else:
                items: list[dict[str, Any]] = [
                    {"startedAt": _iso(s, naive), "stoppedAt": _iso(e, naive)} for s, e in hist
                ]
                if "null_stopped_at" in drift and items:
                    items[-1]["stoppedAt"] = None
                if "extra_fields" in drift:
                    for it in items:
                        it["_id"] = "x" + it["startedAt"]
                a["serviceHistory"] = items
        a["availableTimeInSeconds"] = secs
        a["username"] = username
        if "missing_keys" in drift:
            if pos % 5 == 0:
                del a["availableTimeInSeconds"]
            elif pos % 5 == 2:
                del a["username"]
        if "extra_fields" in drift:
            a["departments"] = []
            a["lastStartedAt"] = _iso(0)
        agents.append(a)
    body: dict[str, Any] = {"agents": agents, "count": len(agents), "offset": offset}
    body["total"] = max(0, len(agents) - 1) if "short_total" in drift else total
    if "extra_fields" in drift:
        body["deprecationWarning"] = "simulated extra field"
    body["success"] = True
    return _dumps(body)


__all__ = [
    "INF",
    "PATHS",
    "ROUTES",
    "ROUTE_AGENTS",
    "ROUTE_AGENTS_STATUS",
    "ROUTE_HISTORY",
    "ROUTE_INFO",
    "Reply",
    "Simulator",
    "SimulatorConfig",
]
