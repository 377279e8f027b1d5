"""Rocket.Chat's routes as model values: one server-local day of history, the live status.

The transport (transport.py) makes each GET safe; the pager (paging.py) gets every item of a
list route in as few requests as the server allows; the parsers (parse.py) turn answers into
model values. This module knows what each route means: a day is asked at local noon (so a
server in a slightly different time zone still maps it to the same day), agents missing from
an answer that could not be paged are counted and warned about once, and "who is available
now" falls back from the per-agent route to the agents-status chart when forbidden.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from exporter.config.model import ServerConfig
from exporter.model import ClosedRoom, DayHistory, Department, LiveStatus, Load, Queued
from exporter.rocketchat.errors import ROUTES, RocketChatError, Stopped
from exporter.rocketchat.omniparse import parse_departments_page, parse_load_page, parse_queue_page
from exporter.rocketchat.paging import Pager
from exporter.rocketchat.parse import (
    BadBody,
    Kept,
    assemble_day,
    history_counts,
    live_counts,
    parse_agents_page,
    parse_agents_status,
    parse_day_reusing,
    parse_history_page,
    unique_agents,
)
from exporter.rocketchat.roomparse import parse_rooms_page
from exporter.rocketchat.transport import Transport
from exporter.text import clean

log = logging.getLogger("exporter.client")

LIVE_RETRY_EVERY = 10  # polls between attempts at the per-agent route while it is refused
TRUNCATION_MEMORY_DAYS = 62  # a truncated day keeps the warning state this long (no flapping)
# A `count=0` answer holds a whole day (or every agent): several MB at thousands of agents,
# and Rocket.Chat aggregates it before the first byte. Such requests get this many timeouts.
BULK_TIMEOUT_FACTOR = 3
# The first Rocket.Chat version whose history route lists `count`/`offset` in its query
# schema (@rocket.chat/rest-typings); older ones answer 400 to them.
HISTORY_PAGING_SINCE = (7, 9)


def day_range(day: date, tz: ZoneInfo) -> tuple[str, str]:
    """`start`/`end` for one server-local day: local noon and one millisecond later, in UTC.

    Rocket.Chat turns both into calendar days in its own process time zone and returns that
    whole day. Noon is 12 h from either midnight, so a server whose real zone is up to 12 h
    off the configured one still picks the same day.
    """
    noon = datetime(day.year, day.month, day.day, 12, tzinfo=tz).astimezone(UTC)
    return _iso_ms(noon), _iso_ms(noon + timedelta(milliseconds=1))


def _iso_ms(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _iso_ms_utc(seconds: float) -> str:
    return _iso_ms(datetime.fromtimestamp(seconds, UTC))


def parse_version(text: object) -> tuple[int, int] | None:
    """(major, minor) of a Rocket.Chat version string such as "7.10.2"; None if unusable."""
    if not isinstance(text, str):
        return None
    parts = text.split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        return None


class RocketChatClient:
    """One Rocket.Chat server. Not thread-safe: one poller thread uses it."""

    def __init__(
        self,
        server: ServerConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        on_request: Callable[[str, str], None] | None = None,
        on_wait: Callable[[float], None] | None = None,
        on_progress: Callable[[str, int, int | None], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        stop: threading.Event | None = None,
        rng: random.Random | None = None,
        max_body_bytes: int | None = None,
    ):
        self.server = server
        self._tz = ZoneInfo(server.timezone)
        self._http = Transport(
            server,
            transport=transport,
            on_request=on_request,
            on_wait=on_wait,
            sleep=sleep,
            clock=clock,
            stop=stop,
            rng=rng,
            max_body_bytes=max_body_bytes or server.max_response_size,
        )
        self._pager = Pager(server.name, self._get_list, on_progress)
        self._states: dict[str, str | None] = {}  # log key -> current failure class
        self._live_fallback = False
        self._live_polls = 0
        self._latest_day: date | None = None
        self._pages: dict[str, int] = {}
        self._truncated: dict[str, int] = {}
        self._truncated_days: dict[str, dict[date, int]] = {}
        # The newest day's agents as last parsed: today's next answer reuses the unchanged.
        self._memo: tuple[date, dict[str, Kept]] | None = None

    # ---- public API ---------------------------------------------------------------------------

    def fetch_history_day(self, day: date) -> DayHistory:
        """Every agent's history of one server-local day (in one request where allowed)."""
        start, end = day_range(day, self._tz)
        params = {"start": start, "end": end, "fullReport": "true"}
        parse = self._parser("history", history_counts)
        try:
            fetched = self._pager.fetch("history", params, parse)
            history = self._parser("history", functools.partial(self._assemble, day))(fetched.pages)
        except RocketChatError as exc:
            self._failed("history", exc)
            raise
        self._succeeded("history")
        if self._latest_day is None or day >= self._latest_day:
            self._latest_day = day
            self._pages["history"] = fetched.requests
        self._note_truncation("history", len(history.agents), history.total, fetched.complete, day)
        return history

    def history_total(self, first: date, last: date) -> int:
        """Agents with any history document in the server-local days first..last.

        One request over the whole range, without fullReport and without paging: only the
        answer's `total` is read (backfill uses it to learn whether Rocket.Chat keeps anything
        for a range before fetching it day by day).
        """
        start, _ = day_range(first, self._tz)
        _, end = day_range(last, self._tz)
        try:
            page = self._parser("history", parse_history_page)(
                self._http.get("history", {"start": start, "end": end})
            )
        except RocketChatError as exc:
            self._failed("history", exc)
            raise
        self._succeeded("history")
        return max(page.total or 0, page.received)

    def fetch_live_status(self) -> LiveStatus:
        """Who is available now: per agent if allowed, else the agents-status chart's counts."""
        self._live_polls += 1
        if not self._live_fallback or self._live_polls % LIVE_RETRY_EVERY == 0:
            try:
                live = self._fetch_agents()
            except RocketChatError as exc:
                if exc.status in (403, 404):
                    self._enter_live_fallback(exc)
                elif not self._live_fallback:
                    self._failed("agents", exc)
                    raise
                # else: a failed re-try while on the chart; the chart still answers below.
            else:
                self._succeeded("agents")
                self._leave_live_fallback()
                return live
        try:
            counts = self._parser("agents_status", parse_agents_status)(
                self._http.get("agents_status", None)
            )
        except RocketChatError as exc:
            self._failed("agents_status", exc)
            raise
        self._succeeded("agents_status")
        self._pages.pop("agents", None)
        self._pages["agents_status"] = 1
        return LiveStatus(agents=None, counts=counts)

    def fetch_departments(self) -> tuple[Department, ...]:
        """Every department that is not archived (one request with count=0 where allowed)."""
        fetched = self._fetch_list("departments", {}, parse_departments_page)
        seen: dict[str, Department] = {}
        for page in fetched.pages:
            for dep in page.departments:
                seen.setdefault(dep.id, dep)
        return tuple(seen[k] for k in sorted(seen))

    def fetch_queue(self) -> tuple[tuple[Queued, ...], int]:
        """The queued chats, oldest first, and Rocket.Chat's `total` of them.

        One request (count=0, sorted by `ts`) whatever the queue length where the server allows
        infinite counts; pages of 100 otherwise.
        """
        params = {"sort": '{"ts":1}'}
        fetched = self._fetch_list("inquiries", params, parse_queue_page)
        queued = tuple(q for page in fetched.pages for q in page.queued)
        total = max([len(queued), *(p.total or 0 for p in fetched.pages)])
        return queued, total

    def fetch_load(self) -> tuple[Load, ...]:
        """Open chats per (online, available) agent and department: GET livechat/queue."""
        fetched = self._fetch_list("load", {}, parse_load_page)
        return tuple(entry for page in fetched.pages for entry in page.load)

    def fetch_closed_rooms(self, since: float) -> tuple[ClosedRoom, ...]:
        """Rooms closed at or after `since` (Rocket.Chat's clock), oldest first: livechat/rooms
        with `closedAt={"start": ...}` (an indexed field), count=0 where allowed."""
        params = {"closedAt": json.dumps({"start": _iso_ms_utc(since)}), "sort": '{"closedAt":1}'}
        fetched = self._fetch_list("rooms", params, parse_rooms_page)
        return tuple(room for page in fetched.pages for room in page.rooms)

    def _fetch_list(self, endpoint: str, params: dict[str, Any], parse: Callable) -> Any:
        try:
            fetched = self._pager.fetch(endpoint, params, self._parser(endpoint, parse))
        except RocketChatError as exc:
            self._failed(endpoint, exc)
            raise
        self._succeeded(endpoint)
        if endpoint != "departments":  # asked every poll; departments only now and then
            self._pages[endpoint] = fetched.requests
        return fetched

    def fetch_info(self) -> dict[str, Any]:
        """GET /api/info (no credentials needed): `{"version": ..., ...}`.

        A version whose history route cannot page is never sent `count`/`offset` there.
        """
        try:
            body = self._http.get("info", None, auth=False)
            if not isinstance(body, dict):
                raise self._http.error(
                    "info",
                    "invalid_response",
                    "answer is not a JSON object",
                    "check that url points at Rocket.Chat",
                    None,
                )
        except RocketChatError as exc:
            self._failed("info", exc)
            raise
        self._succeeded("info")
        info = {k: clean(v) if isinstance(v, str) else v for k, v in body.items()}
        version = parse_version(info.get("version"))
        if version is not None:
            self._pager.never_count("history", version < HISTORY_PAGING_SINCE)
        return info

    def close(self) -> None:
        self._http.close()

    # ---- stats for the poller -----------------------------------------------------------------

    @property
    def clock_skew(self) -> float:
        """Seconds our clock is ahead of Rocket.Chat's (negative: behind); 0 when unknown.

        From the HTTP Date header of the latest answer: it has 1 s resolution and is sent
        before we read it, so this overestimates by up to 1 s plus latency, never less.
        """
        return self._http.skew or 0.0

    @property
    def rate_limit_wait_seconds(self) -> float:
        """Seconds spent waiting for Rocket.Chat's rate limit so far (pacing and 429s)."""
        return self._http.waited

    @property
    def requests_per_poll(self) -> dict[str, int]:
        """Requests per route one poll needs: the newest day's history + live status."""
        return dict(self._pages)

    @property
    def min_poll_interval(self) -> float:
        """Shortest poll interval that keeps every route within its learned rate limit.

        0 when Rocket.Chat sends no rate-limit headers (e.g. a user with
        api-bypass-rate-limit). A poller polling faster will be paced (its polls get longer).
        """
        return max(
            (self._http.limiter.min_interval(route, n) for route, n in self._pages.items()),
            default=0.0,
        )

    @property
    def missing_agents(self) -> dict[str, int]:
        """Agents Rocket.Chat counted but did not return, per route, in the last fetch."""
        return dict(self._truncated)

    @property
    def live_fallback(self) -> bool:
        """True while live status comes from the agents-status chart (no per-agent data)."""
        return self._live_fallback

    # ---- helpers ------------------------------------------------------------------------------

    def _assemble(self, day: date, pages: list) -> DayHistory:
        """The day from its answers; a one-answer day reuses the agents unchanged since the
        previous answer for it (the steady poll's today)."""
        if len(pages) != 1:
            return assemble_day(day, [parse_history_page(p.body) for p in pages])
        memo = self._memo[1] if self._memo is not None and self._memo[0] == day else None
        history, kept = parse_day_reusing(day, pages[0].body, memo)
        if self._memo is None or day >= self._memo[0]:
            self._memo = (day, kept)
        return history

    def _get_list(self, endpoint: str, query: dict[str, Any], bulk: bool) -> object:
        timeout = self.server.timeout * (BULK_TIMEOUT_FACTOR if bulk else 1)
        return self._http.get(endpoint, query, timeout=timeout)

    def _parser(self, endpoint: str, parse: Callable[[object], Any]) -> Callable[[object], Any]:
        def parsed(body: object) -> Any:
            try:
                return parse(body)
            except BadBody as exc:
                raise self._http.error(
                    endpoint,
                    "invalid_response",
                    f"unusable answer: {exc}",
                    "check that url points at Rocket.Chat itself, not a proxy or login page",
                    200,
                ) from None

        return parsed

    def _fetch_agents(self) -> LiveStatus:
        fetched = self._pager.fetch("agents", {}, self._parser("agents", parse_agents_page))
        agents = unique_agents(fetched.pages)
        total = max((p.total or 0 for p in fetched.pages), default=0)
        received = sum(p.received for p in fetched.pages)
        self._pages.pop("agents_status", None)
        self._pages["agents"] = fetched.requests
        self._note_truncation("agents", len(agents), max(total, received), fetched.complete)
        return LiveStatus(agents=agents, counts=live_counts(agents))

    def _note_truncation(
        self, endpoint: str, received: int, total: int, complete: bool, day: date | None = None
    ) -> None:
        """Warn once when agents go missing because pagination was rejected; note recovery.

        History is tracked per day: fetches of different days (initial fill, yesterday's
        refetch) must not flap the state, so it stays "truncated" while any recent day was.
        """
        missing = max(0, total - received)
        self._truncated[endpoint] = missing
        by_day = self._truncated_days.setdefault(endpoint, {})
        slot = day or date.min
        if missing and not complete:
            by_day[slot] = missing
        else:
            by_day.pop(slot, None)
        if day is not None:
            for old in [d for d in by_day if (day - d).days > TRUNCATION_MEMORY_DAYS]:
                del by_day[old]
        key = f"truncated:{endpoint}"
        state = "truncated" if by_day else None
        if state == self._states.get(key):
            return
        self._states[key] = state
        if state:
            log.warning(
                f"Rocket.Chat version ignores pagination on {ROUTES[endpoint]}: received "
                f"{received} of {total} agents; raise Administration > Settings > General > "
                f'REST API "Default Count" and "Upper Count Limit" above {total}',
                extra={"server": self.server.name, "endpoint": endpoint},
            )
        else:
            log.info(
                "all agents returned again",
                extra={"server": self.server.name, "endpoint": endpoint, "agents": received},
            )

    def _enter_live_fallback(self, exc: RocketChatError) -> None:
        if self._live_fallback:
            return
        self._live_fallback = True
        self._live_polls = 0  # the per-agent route is tried again on every 10th poll from here
        log.warning(
            "per-agent live status refused; using the agents-status chart (counts only, no "
            "agent_available / open sessions)",
            extra={"server": self.server.name, "endpoint": "agents", "err": str(exc)},
        )

    def _leave_live_fallback(self) -> None:
        if self._live_fallback:
            self._live_fallback = False
            log.info(
                "per-agent live status allowed again",
                extra={"server": self.server.name, "endpoint": "agents"},
            )

    # ---- logging: once per change of state ----------------------------------------------------

    def _failed(self, endpoint: str, exc: RocketChatError) -> None:
        if self._states.get(endpoint) == exc.reason:
            return
        self._states[endpoint] = exc.reason
        log.warning(
            "Rocket.Chat request failed",
            extra={
                "server": self.server.name,
                "endpoint": endpoint,
                "reason": exc.reason,
                "err": str(exc),
            },
        )

    def _succeeded(self, endpoint: str) -> None:
        previous = self._states.get(endpoint)
        if previous is not None:
            self._states[endpoint] = None
            log.info(
                "Rocket.Chat request recovered",
                extra={"server": self.server.name, "endpoint": endpoint, "after": previous},
            )


__all__ = ["RocketChatClient", "RocketChatError", "Stopped", "day_range"]
