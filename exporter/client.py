"""Synchronous HTTP client for one Rocket.Chat server.

It turns Rocket.Chat's REST quirks into model values: one server-local day of history per
request (asked at local noon so a server in a slightly different time zone still maps it to
the same day), pagination with a fallback for servers that reject `count`/`offset`, pacing by
the rate-limit headers, bounded retries, and a live-status source with a fallback route.

Errors come out as `RocketChatError` with a fixed `reason` (the `poll_errors_total` label) and a
message that quotes Rocket.Chat and says how to fix it. Credentials are read from their
`Secret` on every request (rotated files are picked up) and never appear in messages or logs.
Every wait goes through `sleep`/`stop`, so tests run on a fake clock and shutdown is prompt.
"""

from __future__ import annotations

import logging
import random
import re
import ssl
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from exporter import __version__
from exporter.config.model import ServerConfig
from exporter.history_parser import (
    BadBody,
    assemble_day,
    live_counts,
    parse_agents_page,
    parse_agents_status,
    parse_history_page,
    unique_agents,
)
from exporter.model import DayHistory, LiveStatus
from exporter.ratelimit import RateLimiter, retry_after_429
from exporter.text import clean

log = logging.getLogger("exporter.client")

ROUTES = {
    "history": "/api/v1/livechat/analytics/agents/available-for-service-history",
    "agents": "/api/v1/livechat/users/agent",
    "agents_status": "/api/v1/livechat/analytics/dashboards/charts/agents-status",
    "info": "/api/info",
}
REASONS = (
    "auth",
    "permission",
    "licence",
    "rate_limited",
    "server_error",
    "network",
    "invalid_response",
    "pagination",
)
PAGE_SIZE = 100  # Rocket.Chat's default API_Upper_Count_Limit
MAX_PAGES = 1000  # a server that keeps answering pages cannot hold a poll forever
MAX_ATTEMPTS = 3  # per request, for 5xx / network / unreadable answers
MAX_429_ATTEMPTS = 3  # per request, for 429 answers
BACKOFF_BASE_SECONDS = 1.0
# Clock skew against Rocket.Chat's HTTP Date header worth a warning (and the level below
# which it is called resolved: the header has 1 s resolution plus network latency).
SKEW_WARN_SECONDS = 60.0
SKEW_CLEAR_SECONDS = 30.0
MAX_SKEW_SECONDS = 86400.0  # beyond this a Date header is not believed at all
LIVE_RETRY_EVERY = 10  # polls between attempts at the per-agent route while it is refused
PAGING_REPROBE_EVERY = 30  # fetches between re-tries of count/offset after a rejection
TRUNCATION_MEMORY_DAYS = 62  # a truncated day keeps the warning state this long (no flapping)
PAGINATION_REJECTED = "must NOT have additional properties"

_PERMISSION_FIX = {
    "history": (
        "permission view-livechat-manager missing",
        "give the exporter's user a role with view-livechat-manager "
        "(livechat-monitor is the least privileged built-in one)",
    ),
    "agents_status": (
        "permission view-livechat-manager missing",
        "give the exporter's user a role with view-livechat-manager "
        "(livechat-monitor is the least privileged built-in one)",
    ),
    "agents": (
        "permission to list agents missing",
        "grant manage-livechat-agents (older servers) or transfer-livechat-guest / "
        "edit-omnichannel-contact (newer servers) to the exporter's user",
    ),
    "info": ("access denied", "check that url points at Rocket.Chat"),
}
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_SPACES = re.compile(r"\s+")


class RocketChatError(Exception):
    """A request to Rocket.Chat failed; `reason` is one of REASONS, `status` the HTTP status."""

    def __init__(self, reason: str, message: str, status: int | None = None):
        assert reason in REASONS, reason
        super().__init__(message)
        self.reason = reason
        self.status = status


class Stopped(RocketChatError):
    """The stop event was set while waiting: the poll is abandoned, not failed."""

    def __init__(self) -> None:
        super().__init__("network", "stopped while waiting (shutdown)")


class _Retry(Exception):
    """One attempt failed in a way worth another attempt."""

    def __init__(self, error: RocketChatError, wait: float | None = None):
        self.error = error
        self.wait = wait  # set for 429: how long Rocket.Chat asks us to wait


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


def _clip(text: str, limit: int = 200) -> str:
    text = _SPACES.sub(" ", clean(text)).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def error_text(response: httpx.Response) -> str:
    """Rocket.Chat's own error text (`error`, else `message`), or an HTML title, or the start."""
    try:
        body = response.json()
    except (ValueError, RecursionError):
        body = None
    if isinstance(body, dict):
        for key in ("error", "message", "reason"):
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                return _clip(value)
    try:
        text = response.text
    except (ValueError, LookupError):
        return "unreadable body"
    title = _TITLE.search(text)
    if title:
        return _clip(title.group(1)) or "HTML page"
    return _clip(text) or "empty body"


class RocketChatClient:
    """One Rocket.Chat server. Not thread-safe: one poller thread uses it."""

    def __init__(
        self,
        server: ServerConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        on_request: Callable[[str, str], None] | None = None,
        on_wait: Callable[[float], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        stop: threading.Event | None = None,
        rng: random.Random | None = None,
    ):
        self.server = server
        self._tz = ZoneInfo(server.timezone)
        self._transport = transport
        self._on_request = on_request
        self._on_wait = on_wait
        self._sleep = sleep
        self._clock = clock
        self._stop = stop
        self._rng = rng or random.Random()
        self._http: httpx.Client | None = None
        self._limiter = RateLimiter()
        self._secrets: tuple[str, ...] = ()
        self._states: dict[str, str | None] = {}  # log key -> current failure class
        self._no_paging: set[str] = set()  # endpoints that rejected count/offset
        self._fallback_fetches: dict[str, int] = {}
        self._live_fallback = False
        self._live_polls = 0
        self._latest_day: date | None = None
        self._pages: dict[str, int] = {}
        self._truncated: dict[str, int] = {}
        self._truncated_days: dict[str, dict[date, int]] = {}
        self._waited = 0.0
        self._skew: float | None = None

    # ---- public API ---------------------------------------------------------------------------

    def fetch_history_day(self, day: date) -> DayHistory:
        """Every page of one server-local day of available-for-service-history."""
        start, end = day_range(day, self._tz)
        params = {"start": start, "end": end, "fullReport": "true"}
        try:
            pages, paged = self._fetch_pages("history", params, parse_history_page)
        except RocketChatError as exc:
            self._failed("history", exc)
            raise
        history = assemble_day(day, pages)
        self._succeeded("history")
        if self._latest_day is None or day >= self._latest_day:
            self._latest_day = day
            self._pages["history"] = len(pages)
        self._note_truncation("history", len(history.agents), history.total, paged, day)
        return history

    def fetch_live_status(self) -> LiveStatus:
        """Who is available now: per agent if allowed, else the agents-status chart's counts."""
        self._live_polls += 1
        if not self._live_fallback or self._live_polls % LIVE_RETRY_EVERY == 0:
            try:
                live = self._fetch_agents()
            except Stopped:
                raise
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
            counts = self._fetch_agents_status()
        except RocketChatError as exc:
            self._failed("agents_status", exc)
            raise
        self._succeeded("agents_status")
        self._pages.pop("agents", None)
        self._pages["agents_status"] = 1
        return LiveStatus(agents=None, counts=counts)

    def fetch_info(self) -> dict[str, Any]:
        """GET /api/info (no credentials needed): `{"version": ..., ...}`."""
        try:
            body = self._get("info", None, auth=False)
            if not isinstance(body, dict):
                raise self._error(
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
        return {k: clean(v) if isinstance(v, str) else v for k, v in body.items()}

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    # ---- stats for the poller -----------------------------------------------------------------

    @property
    def clock_skew(self) -> float:
        """Seconds our clock is ahead of Rocket.Chat's (negative: behind); 0 when unknown.

        From the HTTP Date header of the latest answer: it has 1 s resolution and is sent
        before we read it, so this overestimates by up to 1 s plus latency, never less.
        """
        return self._skew or 0.0

    @property
    def rate_limit_wait_seconds(self) -> float:
        """Seconds spent waiting for Rocket.Chat's rate limit so far (pacing and 429s)."""
        return self._waited

    @property
    def requests_per_poll(self) -> dict[str, int]:
        """Requests per route one poll needs: pages of the newest day's history + live status."""
        return dict(self._pages)

    @property
    def min_poll_interval(self) -> float:
        """Shortest poll interval that keeps every route within its learned rate limit.

        0 when Rocket.Chat sends no rate-limit headers (e.g. a user with
        api-bypass-rate-limit). A poller polling faster will be paced (its polls get longer).
        """
        return max(
            (self._limiter.min_interval(route, n) for route, n in self._pages.items()),
            default=0.0,
        )

    @property
    def truncated(self) -> dict[str, int]:
        """Agents Rocket.Chat counted but did not return, per route, in the last fetch."""
        return dict(self._truncated)

    @property
    def live_fallback(self) -> bool:
        """True while live status comes from the agents-status chart (no per-agent data)."""
        return self._live_fallback

    # ---- pagination ---------------------------------------------------------------------------

    def _fetch_pages(
        self, endpoint: str, params: dict[str, str], parse: Callable[[object], Any]
    ) -> tuple[list[Any], bool]:
        """All pages of a list route; returns the pages and whether count/offset were used."""
        paging = self._paging_wanted(endpoint)
        pages: list[Any] = []
        offset = 0
        while True:
            query: dict[str, str | int] = dict(params)
            if paging:
                query.update(count=PAGE_SIZE, offset=offset)
            try:
                page = self._parse(endpoint, parse, self._get(endpoint, query))
            except RocketChatError as exc:
                if exc.reason != "pagination" or not paging:
                    raise
                self._paging_rejected(endpoint, exc)
                paging, pages, offset = False, [], 0
                continue
            pages.append(page)
            if not paging:
                break
            offset += page.received
            more = offset < page.total if page.total is not None else page.received >= PAGE_SIZE
            if not more or page.received == 0 or len(pages) >= MAX_PAGES:
                break
        if paging and endpoint in self._no_paging:
            self._no_paging.discard(endpoint)
            log.info(
                "Rocket.Chat accepts pagination again",
                extra={"server": self.server.name, "endpoint": endpoint},
            )
        return pages, paging

    def _paging_wanted(self, endpoint: str) -> bool:
        if endpoint not in self._no_paging:
            return True
        n = self._fallback_fetches.get(endpoint, 0) + 1
        self._fallback_fetches[endpoint] = n
        # Re-try now and then: an upgraded Rocket.Chat paginates and returns everyone.
        return n % PAGING_REPROBE_EVERY == 0

    def _paging_rejected(self, endpoint: str, exc: RocketChatError) -> None:
        if endpoint not in self._no_paging:
            self._no_paging.add(endpoint)
            self._fallback_fetches[endpoint] = 0
            # Only worth a warning if agents go missing; _note_truncation says so.
            log.debug(
                "Rocket.Chat rejects count/offset; asking without them",
                extra={"server": self.server.name, "endpoint": endpoint, "err": str(exc)},
            )

    def _note_truncation(
        self, endpoint: str, received: int, total: int, paged: bool, day: date | None = None
    ) -> None:
        """Warn once when agents go missing because pagination was rejected; note recovery.

        History is tracked per day: fetches of different days (initial fill, yesterday's
        refetch) must not flap the state, so it stays "truncated" while any recent day was.
        """
        missing = max(0, total - received)
        self._truncated[endpoint] = missing
        by_day = self._truncated_days.setdefault(endpoint, {})
        slot = day or date.min
        if missing and not paged:
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

    def _parse(self, endpoint: str, parse: Callable[[object], Any], body: object) -> Any:
        try:
            return parse(body)
        except BadBody as exc:
            raise self._error(
                endpoint,
                "invalid_response",
                f"unusable answer: {exc}",
                "check that url points at Rocket.Chat itself, not a proxy or login page",
                200,
            ) from None

    # ---- live status --------------------------------------------------------------------------

    def _fetch_agents(self) -> LiveStatus:
        pages, paged = self._fetch_pages("agents", {}, parse_agents_page)
        agents = unique_agents(pages)
        total = max((p.total or 0 for p in pages), default=0)
        received = sum(p.received for p in pages)
        self._pages.pop("agents_status", None)
        self._pages["agents"] = len(pages)
        self._note_truncation("agents", len(agents), max(total, received), paged)
        return LiveStatus(agents=agents, counts=live_counts(agents))

    def _fetch_agents_status(self) -> dict[str, int]:
        return self._parse("agents_status", parse_agents_status, self._get("agents_status", None))

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

    # ---- one request, with pacing, retries and classification ---------------------------------

    def _get(self, endpoint: str, params: dict[str, Any] | None, *, auth: bool = True) -> object:
        failures = limited = 0
        while True:
            self._wait(self._limiter.delay(endpoint, self._clock()), rate_limit=True)
            try:
                return self._attempt(endpoint, params, auth)
            except _Retry as retry:
                if retry.wait is not None:
                    limited += 1
                    if limited >= MAX_429_ATTEMPTS:
                        raise retry.error from None
                    self._wait(retry.wait, rate_limit=True)
                else:
                    failures += 1
                    if failures >= MAX_ATTEMPTS:
                        raise retry.error from None
                    log.debug(
                        "request failed, retrying",
                        extra={
                            "server": self.server.name,
                            "endpoint": endpoint,
                            "reason": retry.error.reason,
                            "err": str(retry.error),
                        },
                    )
                    self._wait(self._backoff(failures), rate_limit=False)

    def _backoff(self, failures: int) -> float:
        """Exponential backoff with jitter: uniformly in [d/2, d], d = base * 2^(n-1)."""
        d = BACKOFF_BASE_SECONDS * 2 ** (failures - 1)
        return d / 2 + self._rng.uniform(0, d / 2)

    def _attempt(self, endpoint: str, params: dict[str, Any] | None, auth: bool) -> object:
        if self._stop is not None and self._stop.is_set():
            raise Stopped()
        headers = self._credentials() if auth else {}
        try:
            response = self._client().get(ROUTES[endpoint], params=params, headers=headers)
        except httpx.TimeoutException:
            self._report(endpoint, "error")
            raise _Retry(
                self._error(
                    endpoint,
                    "network",
                    f"no answer within {self.server.timeout:g} s "
                    f"(timeout, {MAX_ATTEMPTS} attempts)",
                    "check that Rocket.Chat is reachable from the exporter, or raise timeout",
                    None,
                )
            ) from None
        except httpx.HTTPError as exc:
            self._report(endpoint, "error")
            raise _Retry(self._transport_error(endpoint, exc)) from None
        status = response.status_code
        self._report(endpoint, str(status))
        self._limiter.observe(endpoint, response.headers, self._clock())
        self._observe_date(response.headers.get("date"))
        if status == 429:
            self._limiter.exhausted(endpoint)
            text = error_text(response)
            wait = retry_after_429(response.headers, text, self._clock())
            raise _Retry(
                self._error(
                    endpoint,
                    "rate_limited",
                    f"rate limited ({MAX_429_ATTEMPTS} attempts)",
                    "poll less often, or give the exporter's user api-bypass-rate-limit, or raise "
                    "Administration > Settings > Rate Limiter limits",
                    status,
                    text,
                ),
                wait,
            )
        if status >= 500:
            raise _Retry(
                self._error(
                    endpoint,
                    "server_error",
                    f"server error ({MAX_ATTEMPTS} attempts)",
                    "check Rocket.Chat's logs and health",
                    status,
                    error_text(response),
                )
            )
        if 200 <= status < 300:
            try:
                return response.json()
            except (ValueError, RecursionError):
                raise _Retry(
                    self._error(
                        endpoint,
                        "invalid_response",
                        f"answer is not JSON ({MAX_ATTEMPTS} attempts)",
                        "check that url points at Rocket.Chat itself, not a proxy or login page",
                        status,
                        error_text(response),
                    )
                ) from None
        raise self._classify(endpoint, response)

    def _classify(self, endpoint: str, response: httpx.Response) -> RocketChatError:
        """A final (not retried) error answer: 3xx, 400, 401, 403, 404, other 4xx."""
        status = response.status_code
        text = error_text(response)
        lower = text.lower()
        licence = "error-action-not-allowed" in lower or "enterprise" in lower or "licen" in lower
        if status == 400 and PAGINATION_REJECTED.lower() in lower:
            return self._error(
                endpoint,
                "pagination",
                "Rocket.Chat rejected the query parameters",
                "upgrade Rocket.Chat or report this answer",
                status,
                text,
            )
        if status in (400, 403) and licence:
            return self._error(
                endpoint,
                "licence",
                "Rocket.Chat Enterprise licence required",
                "this route needs an Omnichannel Enterprise licence on the Rocket.Chat server",
                status,
                text,
            )
        if status == 401:
            return self._error(
                endpoint,
                "auth",
                "credentials rejected",
                "check user_id and auth_token (a Personal Access Token or login token of the "
                "same user; tokens expire when the user logs out)",
                status,
                text,
            )
        if status == 403:
            problem, fix = _PERMISSION_FIX[endpoint]
            return self._error(endpoint, "permission", problem, fix, status, text)
        if status == 404 and endpoint == "history":
            return self._error(
                endpoint,
                "licence",
                "route not found: no Enterprise licence (older servers hide the route) or url "
                "is wrong",
                "check url, and that the server has an Omnichannel Enterprise licence",
                status,
                text,
            )
        if 300 <= status < 400:
            where = response.headers.get("location", "?")
            return self._error(
                endpoint,
                "invalid_response",
                f"redirected to {_clip(where, 120)}",
                "set url to the address Rocket.Chat is served at (scheme, host and path)",
                status,
                text,
            )
        return self._error(
            endpoint,
            "invalid_response",
            "request rejected",
            "check url; if it is right, report this answer (Rocket.Chat version?)",
            status,
            text,
        )

    def _transport_error(self, endpoint: str, exc: httpx.HTTPError) -> RocketChatError:
        detail = f"{type(exc).__name__}: {exc}"
        if "CERTIFICATE" in detail.upper() or "SSL" in detail.upper():
            fix = (
                "set ca_file to the CA that signed Rocket.Chat's certificate, or verify_tls: false"
            )
        else:
            fix = "check url, DNS and firewalls between the exporter and Rocket.Chat"
        return self._error(
            endpoint,
            "network",
            f"cannot reach {self.server.url} ({_clip(detail)}; {MAX_ATTEMPTS} attempts)",
            fix,
            None,
        )

    def _error(
        self,
        endpoint: str,
        reason: str,
        problem: str,
        fix: str,
        status: int | None,
        said: str | None = None,
    ) -> RocketChatError:
        where = f"HTTP {status}, " if status is not None else ""
        quoted = f' ({where}Rocket.Chat said: "{said}")' if said is not None else ""
        message = f"GET {ROUTES[endpoint]}: {problem}{quoted}; fix: {fix}"
        return RocketChatError(reason, self._scrub(message), status)

    # ---- plumbing -----------------------------------------------------------------------------

    def _credentials(self) -> dict[str, str]:
        values = []
        for secret in (self.server.user_id, self.server.auth_token):
            try:
                value = secret.get()
            except (OSError, ValueError) as exc:
                raise RocketChatError(
                    "auth",
                    f"cannot read {secret!r}: {type(exc).__name__}: "
                    f"{getattr(exc, 'strerror', None) or 'unreadable'}; fix: make the file "
                    "readable by the exporter and non-empty",
                ) from None
            if not value or not value.isascii() or not value.isprintable():
                raise RocketChatError(
                    "auth",
                    f"{secret!r} is empty or has characters not allowed in an HTTP header; "
                    "fix: put only the id/token in it",
                )
            values.append(value)
        self._secrets = tuple(values)
        return {"X-User-Id": values[0], "X-Auth-Token": values[1]}

    def _scrub(self, text: str) -> str:
        for value in self._secrets:
            if len(value) >= 4:
                text = text.replace(value, "<redacted>")
        return text

    def _client(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(
                base_url=self.server.url,
                timeout=httpx.Timeout(self.server.timeout),
                verify=self._verify(),
                transport=self._transport,
                follow_redirects=False,  # a redirect would carry the credentials elsewhere
                headers={
                    "User-Agent": f"rocketchat-omnichannel-exporter/{__version__}",
                    "Accept": "application/json",
                },
            )
        return self._http

    def _verify(self) -> ssl.SSLContext | bool:
        if not self.server.verify_tls:
            return False
        if self._transport is not None:  # the given transport does its own TLS
            return True
        try:
            # The system store (not certifi's), plus ca_file when given.
            return ssl.create_default_context(cafile=self.server.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise RocketChatError(
                "network",
                f"cannot load ca_file {self.server.ca_file}: {exc}; fix: point ca_file at a "
                "readable PEM bundle",
            ) from None

    def _report(self, endpoint: str, code: str) -> None:
        if self._on_request is not None:
            self._on_request(endpoint, code)

    def _wait(self, seconds: float, *, rate_limit: bool) -> None:
        """Sleep, interruptible by `stop`; raises Stopped when it was set."""
        if seconds <= 0:
            return
        if rate_limit:
            self._waited += seconds
        if self._on_wait is not None:
            self._on_wait(seconds)
        stop = self._stop
        if stop is not None and self._sleep is time.sleep:
            if stop.wait(seconds):  # the real clock: sleep on the event so shutdown wakes us
                raise Stopped()
            return
        self._sleep(seconds)
        if stop is not None and stop.is_set():
            raise Stopped()

    def _observe_date(self, header: str | None) -> None:
        """Learn Rocket.Chat's clock from a Date header; warn once when ours is far off."""
        if not header:
            return
        try:
            server_now = parsedate_to_datetime(header).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return
        skew = self._clock() - server_now
        if abs(skew) > MAX_SKEW_SECONDS:
            return
        self._skew = skew
        previous = self._states.get("clock")
        if abs(skew) >= SKEW_WARN_SECONDS:
            state = "ahead" if skew > 0 else "behind"
        elif abs(skew) < SKEW_CLEAR_SECONDS:
            state = None
        else:
            state = previous
        if state == previous:
            return
        self._states["clock"] = state
        if state:
            log.warning(
                f"the exporter's clock is {abs(skew):.0f} s {state} of Rocket.Chat's (HTTP Date "
                "header); days are closed by Rocket.Chat's clock, but windows end at the "
                "exporter's: run NTP on both hosts",
                extra={"server": self.server.name, "skew_seconds": round(skew, 1)},
            )
        else:
            log.info(
                "the exporter's clock agrees with Rocket.Chat's again",
                extra={"server": self.server.name, "skew_seconds": round(skew, 1)},
            )

    # ---- logging: once per change of state ----------------------------------------------------

    def _failed(self, endpoint: str, exc: RocketChatError) -> None:
        if isinstance(exc, Stopped) or self._states.get(endpoint) == exc.reason:
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
