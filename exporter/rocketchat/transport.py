"""One GET to Rocket.Chat, done safely: credentials, TLS, pacing, retries, bounded answers.

- Credentials are read from their `Secret` on every request (rotated files are picked up) and
  scrubbed from every message.
- Pacing follows the rate-limit headers (ratelimit.py); 5xx, network errors and unreadable
  answers are retried with jittered exponential backoff, 429s after the wait they ask for.
- Answers are bounded: a body larger than `max_body_bytes` (after decompression, so a gzip
  bomb is stopped after at most that much output), or one that is still arriving when the
  request's total deadline passes (a slow drip), fails the request; nesting too deep for the
  JSON parser is an unreadable answer. Redirects are never followed (they would carry the
  credentials elsewhere).
- Rocket.Chat's clock is learnt from the `Date` header of each answer.

Every wait goes through `sleep`/`stop`, so tests run on a fake clock and shutdown is prompt.
"""

from __future__ import annotations

import logging
import random
import ssl
import threading
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from exporter import __version__
from exporter.config.model import ServerConfig
from exporter.rocketchat.body import Unreadable, clip, decode_json, error_text, read_bounded
from exporter.rocketchat.errors import (
    PERMISSION_FIX,
    ROUTES,
    RocketChatError,
    Stopped,
    describe,
)
from exporter.rocketchat.ratelimit import RateLimiter, retry_after_429

log = logging.getLogger("exporter.client")

MAX_ATTEMPTS = 3  # per request, for 5xx / network / unreadable answers
MAX_429_ATTEMPTS = 3  # per request, for 429 answers
BACKOFF_BASE_SECONDS = 1.0
# Default bound on one answer's size after decompression. A day of history for 20,000 agents
# with ten sessions each is about 20 MB in one `count=0` answer; 64 MiB leaves room for more.
MAX_BODY_BYTES = 64 * 1024 * 1024
ERROR_BODY_BYTES = 64 * 1024  # an error answer is read only this far (for its text)
# Clock skew against Rocket.Chat's HTTP Date header worth a warning (and the level below
# which it is called resolved: the header has 1 s resolution plus network latency).
SKEW_WARN_SECONDS = 60.0
SKEW_CLEAR_SECONDS = 30.0
MAX_SKEW_SECONDS = 86400.0  # beyond this a Date header is not believed at all
PAGINATION_REJECTED = "must NOT have additional properties"


class _Retry(Exception):
    """One attempt failed in a way worth another attempt."""

    def __init__(self, error: RocketChatError, wait: float | None = None):
        self.error = error
        self.wait = wait  # set for 429: how long Rocket.Chat asks us to wait


class Transport:
    """GETs to one Rocket.Chat server. Not thread-safe: one poller thread uses it."""

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
        max_body_bytes: int = MAX_BODY_BYTES,
    ):
        self.server = server
        self._transport = transport
        self._on_request = on_request
        self._on_wait = on_wait
        self._sleep = sleep
        self._clock = clock
        self._stop = stop
        self._rng = rng or random.Random()
        self._max_body = max_body_bytes
        self._http: httpx.Client | None = None
        self.limiter = RateLimiter()
        self._secrets: tuple[str, ...] = ()
        self._clock_state: str | None = None
        self.waited = 0.0  # seconds spent waiting for the rate limit (pacing and 429s)
        self.skew: float | None = None  # our clock minus Rocket.Chat's, from the Date header

    # ---- one request, with pacing and retries ---------------------------------------------------

    def get(
        self,
        endpoint: str,
        params: dict[str, Any] | None,
        *,
        auth: bool = True,
        timeout: float | None = None,
    ) -> object:
        """The decoded JSON answer of GET `endpoint`, or RocketChatError (Stopped on shutdown).

        `timeout` (default the server's) bounds each attempt in total, not only each read.
        """
        failures = limited = 0
        while True:
            self.wait(self.limiter.delay(endpoint, self._clock()), rate_limit=True)
            try:
                return self._attempt(endpoint, params, auth, timeout or self.server.timeout)
            except _Retry as retry:
                if retry.wait is not None:
                    limited += 1
                    if limited >= MAX_429_ATTEMPTS:
                        raise retry.error from None
                    self.wait(retry.wait, rate_limit=True)
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
                    self.wait(self._backoff(failures), rate_limit=False)

    def _backoff(self, failures: int) -> float:
        """Exponential backoff with jitter: uniformly in [d/2, d], d = base * 2^(n-1)."""
        d = BACKOFF_BASE_SECONDS * 2 ** (failures - 1)
        return d / 2 + self._rng.uniform(0, d / 2)

    def _attempt(
        self, endpoint: str, params: dict[str, Any] | None, auth: bool, timeout: float
    ) -> object:
        if self._stop is not None and self._stop.is_set():
            raise Stopped()
        headers = self._credentials() if auth else {}
        deadline = time.monotonic() + timeout
        try:
            with self._client().stream(
                "GET", ROUTES[endpoint], params=params, headers=headers, timeout=timeout
            ) as response:
                status = response.status_code
                ok = 200 <= status < 300
                try:
                    body = read_bounded(
                        response, self._max_body if ok else ERROR_BODY_BYTES, deadline
                    )
                except Unreadable as exc:
                    if not ok:  # an error answer's text is optional; its status says enough
                        body = b""
                    else:
                        self._report(endpoint, str(status))
                        raise _Retry(self._unreadable(endpoint, status, str(exc))) from None
        except httpx.TimeoutException:
            self._report(endpoint, "error")
            raise _Retry(
                self.error(
                    endpoint,
                    "network",
                    f"no answer within {timeout:g} s (timeout, {MAX_ATTEMPTS} attempts)",
                    "check that Rocket.Chat is reachable from the exporter, or raise timeout",
                    None,
                )
            ) from None
        except httpx.HTTPError as exc:
            self._report(endpoint, "error")
            raise _Retry(self._transport_error(endpoint, exc)) from None
        self._report(endpoint, str(status))
        self.limiter.observe(endpoint, response.headers, self._clock())
        self._observe_date(response.headers.get("date"))
        return self._interpret(endpoint, response, status, body)

    def _interpret(
        self, endpoint: str, response: httpx.Response, status: int, body: bytes
    ) -> object:
        if status == 429:
            self.limiter.exhausted(endpoint)
            text = error_text(body)
            wait = retry_after_429(response.headers, text, self._clock())
            raise _Retry(
                self.error(
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
                self.error(
                    endpoint,
                    "server_error",
                    f"server error ({MAX_ATTEMPTS} attempts)",
                    "check Rocket.Chat's logs and health",
                    status,
                    error_text(body),
                )
            )
        if 200 <= status < 300:
            try:
                return decode_json(body)
            except (ValueError, RecursionError):
                raise _Retry(
                    self.error(
                        endpoint,
                        "invalid_response",
                        f"answer is not JSON ({MAX_ATTEMPTS} attempts)",
                        "check that url points at Rocket.Chat itself, not a proxy or login page",
                        status,
                        # A cut JSON answer is data (room documents carry visitor details and
                        # message text), not an error text: never quote it.
                        None
                        if body.lstrip()[:1] in (b"{", b"[")
                        else error_text(body[:ERROR_BODY_BYTES]),
                    )
                ) from None
        raise self._classify(endpoint, response, status, error_text(body))

    def _unreadable(self, endpoint: str, status: int, why: str) -> RocketChatError:
        return self.error(
            endpoint,
            "invalid_response",
            f"{why} ({MAX_ATTEMPTS} attempts)",
            "check what answers at url (a proxy streaming or compressing without end?); for a "
            "very large team raise timeout",
            status,
        )

    def _classify(
        self, endpoint: str, response: httpx.Response, status: int, text: str
    ) -> RocketChatError:
        """A final (not retried) error answer: 3xx, 400, 401, 403, 404, other 4xx."""
        lower = text.lower()
        licence = "error-action-not-allowed" in lower or "enterprise" in lower or "licen" in lower
        if status == 400 and PAGINATION_REJECTED.lower() in lower:
            return self.error(
                endpoint,
                "pagination",
                "Rocket.Chat rejected the query parameters",
                "upgrade Rocket.Chat or report this answer",
                status,
                text,
            )
        if status in (400, 403) and licence:
            return self.error(
                endpoint,
                "licence",
                "Rocket.Chat Enterprise licence required",
                "this route needs an Omnichannel Enterprise licence on the Rocket.Chat server",
                status,
                text,
            )
        if status == 401:
            return self.error(
                endpoint,
                "auth",
                "credentials rejected",
                "check user_id and auth_token (a Personal Access Token or login token of the "
                "same user; tokens expire when the user logs out)",
                status,
                text,
            )
        if status == 403:
            problem, fix = PERMISSION_FIX[endpoint]
            return self.error(endpoint, "permission", problem, fix, status, text)
        if status == 404 and endpoint == "history":
            return self.error(
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
            return self.error(
                endpoint,
                "invalid_response",
                f"redirected to {clip(where, 120)}",
                "set url to the address Rocket.Chat is served at (scheme, host and path)",
                status,
                text,
            )
        return self.error(
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
        return self.error(
            endpoint,
            "network",
            f"cannot reach {self.server.url} ({clip(detail)}; {MAX_ATTEMPTS} attempts)",
            fix,
            None,
        )

    def error(
        self,
        endpoint: str,
        reason: str,
        problem: str,
        fix: str,
        status: int | None,
        said: str | None = None,
    ) -> RocketChatError:
        """A RocketChatError with credentials scrubbed from its message."""
        return RocketChatError(
            reason, self._scrub(describe(endpoint, problem, fix, status, said)), status
        )

    # ---- plumbing -------------------------------------------------------------------------------

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
                    # Only what read_bounded can decode with a bound on the output.
                    "Accept-Encoding": "gzip, deflate",
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

    def wait(self, seconds: float, *, rate_limit: bool) -> None:
        """Sleep, interruptible by `stop`; raises Stopped when it was set."""
        if seconds <= 0:
            return
        if rate_limit:
            self.waited += seconds
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

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

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
        self.skew = skew
        previous = self._clock_state
        if abs(skew) >= SKEW_WARN_SECONDS:
            state: str | None = "ahead" if skew > 0 else "behind"
        elif abs(skew) < SKEW_CLEAR_SECONDS:
            state = None
        else:
            state = previous
        if state == previous:
            return
        self._clock_state = state
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
