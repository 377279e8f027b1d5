"""RocketChatClient over httpx.MockTransport: every branch, on a fake clock.

Real-HTTP tests against the simulator are in test_client_simulator.py.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.config.model import Secret, ServerConfig
from exporter.rocketchat.client import RocketChatClient, day_range
from exporter.rocketchat.errors import REASONS, ROUTES, RocketChatError, Stopped
from exporter.rocketchat.ratelimit import RESET_MARGIN_SECONDS
from exporter.rocketchat.transport import MAX_ATTEMPTS

USER_ID = "rbAXPnMktTFbNpwtJ"
TOKEN = "RScctEHSmLGZGywfIhWyRpyofhKOiMoUIpimhvheU3f"
NOW = 1_709_640_000.0  # 2024-03-05 12:00:00 UTC
DAY = date(2024, 3, 5)
HISTORY = ROUTES["history"]
AGENTS = ROUTES["agents"]
STATUS = ROUTES["agents_status"]

Handler = Callable[[httpx.Request], httpx.Response]


class FakeClock:
    """time.time and time.sleep in one: sleeping advances the clock instantly."""

    def __init__(self, now: float = NOW):
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Recorder:
    """Wraps a handler and keeps every request."""

    def __init__(self, handler: Handler):
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    def params(self, i: int = -1) -> dict[str, str]:
        return dict(self.requests[i].url.params)

    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]


def script(*responses: httpx.Response | Exception) -> Handler:
    """A handler answering with the given responses in order (the last one repeats)."""
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        return item

    return handler


def server_config(**overrides: object) -> ServerConfig:
    values: dict[str, object] = {
        "name": "rc",
        "url": "https://rc.example.com",
        "user_id": Secret(value=USER_ID, key="servers[0].user_id"),
        "auth_token": Secret(value=TOKEN, key="servers[0].auth_token"),
        "timezone": "Europe/Berlin",
    }
    values.update(overrides)
    return ServerConfig(**values)  # type: ignore[arg-type]


class Rig:
    def __init__(self, handler: Handler, stop: threading.Event | None = None, **server: object):
        self.clock = FakeClock()
        self.recorder = Recorder(handler)
        self.codes: list[tuple[str, str]] = []
        self.client = RocketChatClient(
            server_config(**server),
            transport=httpx.MockTransport(self.recorder),
            on_request=lambda endpoint, code: self.codes.append((endpoint, code)),
            sleep=self.clock.sleep,
            clock=self.clock,
            stop=stop,
            rng=random.Random(7),
        )


def ok(payload: object, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(200, json=payload, headers=headers)


def err(status: int, text: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json={"success": False, "error": text}, headers=headers)


def history_body(names: list[str], total: int | None = None, offset: int = 0) -> dict:
    agents = [
        {
            "username": n,
            "availableTimeInSeconds": 3600,
            "serviceHistory": [
                {"startedAt": "2024-03-05T08:00:00.000Z", "stoppedAt": "2024-03-05T09:00:00.000Z"}
            ],
        }
        for n in names
    ]
    return {
        "agents": agents,
        "count": len(agents),
        "offset": offset,
        "total": len(names) if total is None else total,
        "success": True,
    }


def page_size(request: httpx.Request, infinite: bool, default: int = 50, upper: int = 100) -> int:
    """Rocket.Chat's getPaginationItems: count=0 is "all" while API_Allow_Infinite_Count is on,
    else the default count; any other count is clamped to the upper limit."""
    count = int(request.url.params.get("count", default))
    if count == 0:
        return 10**9 if infinite else default
    return min(count, upper)


def paged_history(names: list[str], *, infinite: bool = True) -> Handler:
    """A current server: honours count/offset, and count=0 unless infinite count is off."""

    def handler(request: httpx.Request) -> httpx.Response:
        count = page_size(request, infinite)
        offset = int(request.url.params.get("offset", 0))
        return ok(history_body(names[offset : offset + count], len(names), offset))

    return handler


def rejecting_history(names: list[str], default_count: int = 50) -> Handler:
    """An older server: count/offset rejected by the schema, default page size."""

    def handler(request: httpx.Request) -> httpx.Response:
        if {"count", "offset"} & set(request.url.params):
            return httpx.Response(
                400,
                json={
                    "success": False,
                    "error": "must NOT have additional properties [invalid-params]",
                    "errorType": "invalid-params",
                },
            )
        return ok(history_body(names[:default_count], len(names)))

    return handler


def names(n: int) -> list[str]:
    return [f"agent{i:05d}" for i in range(n)]


def assert_no_secrets(*texts: str) -> None:
    for text in texts:
        assert USER_ID not in text
        assert TOKEN not in text


def log_texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() + " " + repr(r.__dict__) for r in caplog.records]


# ---- the request itself -------------------------------------------------------------------------


def test_history_request_shape() -> None:
    rig = Rig(paged_history(["a", "b"]))
    day = rig.client.fetch_history_day(DAY)
    req = rig.recorder.requests[0]
    assert req.url.path == HISTORY
    assert req.headers["X-User-Id"] == USER_ID
    assert req.headers["X-Auth-Token"] == TOKEN
    # Local noon in Europe/Berlin (UTC+1 in March) and one millisecond later.
    assert rig.recorder.params() == {
        "start": "2024-03-05T11:00:00.000Z",
        "end": "2024-03-05T11:00:00.001Z",
        "fullReport": "true",
        "count": "0",  # everything in one answer (API_Allow_Infinite_Count, on by default)
    }
    assert set(day.agents) == {"a", "b"} and day.day == DAY and day.missing_agents == 0
    assert rig.codes == [("history", "200")]


@pytest.mark.parametrize(
    "tz", ["UTC", "Europe/Berlin", "America/New_York", "Pacific/Kiritimati", "Pacific/Pago_Pago"]
)
@pytest.mark.parametrize("day", [date(2024, 3, 10), date(2024, 3, 31), date(2024, 11, 3)])
def test_day_range_maps_to_the_same_day_for_a_zone_up_to_12h_off(tz: str, day: date) -> None:
    start, end = day_range(day, ZoneInfo(tz))
    t0 = datetime.fromisoformat(start)
    t1 = datetime.fromisoformat(end)
    assert t1 - t0 == timedelta(milliseconds=1)
    assert start.endswith("Z") and len(start) == len("2024-03-05T11:00:00.000Z")
    local = t0.astimezone(ZoneInfo(tz))
    assert (local.date(), local.hour, local.minute) == (day, 12, 0)
    # A server whose real zone is off by anything in [-12 h, +12 h) still sees `day`.
    for minutes in range(-12 * 60, 12 * 60, 30):
        off = local.utcoffset() + timedelta(minutes=minutes)  # type: ignore[operator]
        for moment in (t0, t1):
            assert (moment.astimezone(UTC) + off).date() == day


def test_credentials_are_read_on_every_request(tmp_path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first-token\n")
    rig = Rig(paged_history(["a"]), auth_token=Secret(path=str(token_file), key="auth_token"))
    rig.client.fetch_history_day(DAY)
    token_file.write_text("second-token-rotated\n")
    rig.client.fetch_history_day(DAY)
    assert [r.headers["X-Auth-Token"] for r in rig.recorder.requests] == [
        "first-token",
        "second-token-rotated",
    ]


def test_unreadable_secret_is_an_auth_error_naming_the_key(tmp_path) -> None:
    rig = Rig(
        paged_history(["a"]),
        auth_token=Secret(path=str(tmp_path / "missing"), key="servers[0].auth_token"),
    )
    with pytest.raises(RocketChatError) as info:
        rig.client.fetch_history_day(DAY)
    assert info.value.reason == "auth"
    assert "servers[0].auth_token" in str(info.value) and "missing" in str(info.value)
    assert rig.recorder.requests == []


def test_secret_with_header_breaking_characters_is_rejected_without_echo() -> None:
    bad = "abc\r\nX-Evil: 1" + TOKEN
    rig = Rig(paged_history(["a"]), auth_token=Secret(value=bad, key="servers[0].auth_token"))
    with pytest.raises(RocketChatError) as info:
        rig.client.fetch_history_day(DAY)
    assert info.value.reason == "auth"
    assert TOKEN not in str(info.value) and "X-Evil" not in str(info.value)


# ---- pagination ---------------------------------------------------------------------------------


def test_count_zero_gets_a_whole_day_in_one_request() -> None:
    rig = Rig(paged_history(names(2500)))
    day = rig.client.fetch_history_day(DAY)
    assert len(day.agents) == 2500 and day.missing_agents == 0
    assert len(rig.recorder.requests) == 1 and rig.recorder.params()["count"] == "0"
    assert rig.client.requests_per_poll == {"history": 1}


def test_pages_until_total_when_infinite_count_is_off(caplog) -> None:
    caplog.set_level(logging.INFO, logger="exporter.client")
    everyone = names(250)
    rig = Rig(paged_history(everyone, infinite=False))
    day = rig.client.fetch_history_day(DAY)
    assert len(day.agents) == 250 and day.total == 250 and day.missing_agents == 0
    # count=0 got the default 50; the rest in pages of 100 from where it stopped.
    assert [rig.recorder.params(i).get("offset") for i in range(3)] == [None, "50", "150"]
    assert [rig.recorder.params(i)["count"] for i in range(3)] == ["0", "100", "100"]
    assert rig.client.requests_per_poll == {"history": 3}
    assert "Allow infinite count" in caplog.records[0].getMessage()
    rig.recorder.requests.clear()
    rig.client.fetch_history_day(DAY)  # remembered: pages straight away, no count=0 first
    assert [rig.recorder.params(i)["count"] for i in range(3)] == ["100", "100", "100"]
    assert len(caplog.records) == 1


def test_a_paged_route_is_reprobed_with_count_zero_rarely() -> None:
    from exporter.rocketchat.paging import REPROBE_EVERY

    everyone = names(120)
    infinite = {"on": False}
    rig = Rig(lambda r: paged_history(everyone, infinite=infinite["on"])(r))
    rig.client.fetch_history_day(DAY)
    infinite["on"] = True  # the admin turned the setting on
    for _ in range(REPROBE_EVERY - 1):
        rig.client.fetch_history_day(DAY)
    assert rig.client.requests_per_poll == {"history": 2}  # still paging...
    rig.client.fetch_history_day(DAY)  # ... until the re-probe
    assert rig.client.requests_per_poll == {"history": 1}
    assert rig.recorder.params()["count"] == "0"


def test_a_version_without_history_paging_is_never_sent_count() -> None:
    population = names(30)
    history = rejecting_history(population)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == ROUTES["info"]:
            return ok({"version": "7.0", "success": True})
        return history(request)

    rig = Rig(handler)
    rig.client.fetch_info()
    for _ in range(40):
        rig.client.fetch_history_day(DAY)
    history_params = [dict(r.url.params) for r in rig.recorder.requests[1:]]
    assert len(history_params) == 40
    assert all("count" not in p and "offset" not in p for p in history_params)


def test_server_clamping_page_size_still_gets_everyone() -> None:
    everyone = names(120)

    def clamped(request: httpx.Request) -> httpx.Response:  # Upper Count Limit 50
        offset = int(request.url.params.get("offset", 0))
        return ok(history_body(everyone[offset : offset + 50], 120, offset))

    rig = Rig(clamped)
    assert len(rig.client.fetch_history_day(DAY).agents) == 120
    assert [rig.recorder.params(i).get("offset") for i in range(3)] == [None, "50", "100"]


def test_empty_page_before_total_stops() -> None:
    def short(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params.get("offset", 0))
        return ok(history_body(names(100) if offset == 0 else [], 180, offset))

    rig = Rig(short)
    day = rig.client.fetch_history_day(DAY)
    assert len(rig.recorder.requests) == 2 and day.missing_agents == 80


def test_pagination_rejected_falls_back_once_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="exporter.client")
    rig = Rig(rejecting_history(names(120)))
    day = rig.client.fetch_history_day(DAY)
    assert len(day.agents) == 50 and day.total == 120 and day.missing_agents == 70
    assert rig.client.missing_agents == {"history": 70}
    assert rig.codes == [("history", "400"), ("history", "200")]
    assert "count" not in rig.recorder.params(1)
    for _ in range(5):  # later polls: no rejected request, no new warning
        rig.client.fetch_history_day(DAY)
    assert len(rig.recorder.requests) == 7
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    text = warnings[0].getMessage()
    assert "ignores pagination" in text and "received 50 of 120 agents" in text
    assert '"Default Count"' in text and '"Upper Count Limit"' in text and "above 120" in text


def test_pagination_rejected_without_truncation_is_quiet(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rig = Rig(rejecting_history(names(20)))
    assert rig.client.fetch_history_day(DAY).missing_agents == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_truncation_clearing_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="exporter.client")
    population = names(120)
    rig = Rig(rejecting_history(population))
    rig.client.fetch_history_day(DAY)
    del population[50:]  # agents removed (or the admin raised Default Count)
    rig.client.fetch_history_day(DAY)
    rig.client.fetch_history_day(DAY)
    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO"]


def test_truncation_on_some_days_only_does_not_flap(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="exporter.client")
    sizes = {DAY: 120, DAY - timedelta(days=1): 20, DAY - timedelta(days=2): 90}

    def handler(request: httpx.Request) -> httpx.Response:
        start = datetime.fromisoformat(request.url.params["start"])
        day = start.astimezone(ZoneInfo("Europe/Berlin")).date()
        return rejecting_history(names(sizes[day]))(request)

    rig = Rig(handler)
    for _ in range(3):  # initial fill newest first, then polls of today and yesterday
        for day in sorted(sizes, reverse=True):
            rig.client.fetch_history_day(day)
    assert [r.levelname for r in caplog.records] == ["WARNING"]


def test_rejected_even_without_count_is_a_pagination_error() -> None:
    always = err(400, "must NOT have additional properties [invalid-params]")
    rig = Rig(script(always))
    with pytest.raises(RocketChatError) as info:
        rig.client.fetch_history_day(DAY)
    assert info.value.reason == "pagination" and info.value.status == 400
    assert "must NOT have additional properties" in str(info.value)
    assert len(rig.recorder.requests) == 2


def test_pagination_is_reprobed_after_an_upgrade() -> None:
    everyone = names(120)
    upgraded = {"yes": False}
    old, new = rejecting_history(everyone), paged_history(everyone)
    rig = Rig(lambda r: new(r) if upgraded["yes"] else old(r))
    rig.client.fetch_history_day(DAY)
    upgraded["yes"] = True
    sizes = [len(rig.client.fetch_history_day(DAY).agents) for _ in range(30)]
    assert sizes[:28] == [50] * 28 and sizes[29] == 120


# ---- error classes, no retry on 4xx -------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "reason", "needles"),
    [
        (
            httpx.Response(
                401, json={"status": "error", "message": "You must be logged in to do this."}
            ),
            "auth",
            ["You must be logged in to do this.", "auth_token"],
        ),
        (
            err(
                403,
                "User does not have the permissions required for this action [error-unauthorized]",
            ),
            "permission",
            ["permission view-livechat-manager missing", "error-unauthorized", "livechat-monitor"],
        ),
        (
            err(400, "This is an enterprise feature [error-action-not-allowed]"),
            "licence",
            ["This is an enterprise feature [error-action-not-allowed]", "licence"],
        ),
        (
            httpx.Response(404, text="<html><title>404 Not Found</title></html>"),
            "licence",
            ["404 Not Found", "url"],
        ),
        (
            err(400, 'The "start" query parameter must be a valid date.'),
            "invalid_response",
            ['The "start" query parameter must be a valid date.'],
        ),
        (
            httpx.Response(302, headers={"location": "https://sso.example.com/login"}),
            "invalid_response",
            ["redirected to https://sso.example.com/login"],
        ),
    ],
)
def test_final_errors_are_not_retried(
    response: httpx.Response, reason: str, needles: list[str]
) -> None:
    rig = Rig(script(response))
    with pytest.raises(RocketChatError) as info:
        rig.client.fetch_history_day(DAY)
    assert info.value.reason == reason
    assert info.value.status == response.status_code
    for needle in needles:
        assert needle in str(info.value)
    assert "fix:" in str(info.value)
    assert len(rig.recorder.requests) == 1
    assert rig.clock.sleeps == []
    assert_no_secrets(str(info.value))


@pytest.mark.parametrize(
    "body",
    [{"success": False, "error": "weird"}, [1, 2], {"success": True}, "text"],
)
def test_unusable_200_is_invalid_response(body: object) -> None:
    rig = Rig(script(ok(body)))
    with pytest.raises(RocketChatError) as info:
        rig.client.fetch_history_day(DAY)
    assert info.value.reason == "invalid_response"
    assert len(rig.recorder.requests) == 1


# ---- retries ------------------------------------------------------------------------------------


def test_5xx_is_retried_with_backoff_then_succeeds() -> None:
    rig = Rig(script(err(502, "bad gateway"), err(503, "busy"), ok(history_body(["a"]))))
    assert set(rig.client.fetch_history_day(DAY).agents) == {"a"}
    assert [c for _, c in rig.codes] == ["502", "503", "200"]
    first, second = rig.clock.sleeps
    assert 0.5 <= first <= 1.0 and 1.0 <= second <= 2.0  # exponential with jitter
    assert rig.client.rate_limit_wait_seconds == 0  # backoff is not rate limiting


@pytest.mark.parametrize(
    ("failure", "reason", "needle"),
    [
        (err(500, "Internal server error"), "server_error", "Internal server error"),
        (httpx.ConnectError("connection refused"), "network", "connection refused"),
        (httpx.ReadTimeout("timed out"), "network", "timeout"),
        (httpx.Response(200, text='{"agents": [{"usern'), "invalid_response", "not JSON"),
        (
            httpx.Response(200, text="<html><head><title>Bad Gateway</title></head></html>"),
            "invalid_response",
            "Bad Gateway",
        ),
    ],
)
def test_transient_failures_are_bounded(failure: object, reason: str, needle: str) -> None:
    rig = Rig(script(failure))  # type: ignore[arg-type]
    with pytest.raises(RocketChatError) as info:
        rig.client.fetch_history_day(DAY)
    assert info.value.reason == reason
    assert needle in str(info.value)
    assert len(rig.recorder.requests) == MAX_ATTEMPTS
    assert len(rig.clock.sleeps) == MAX_ATTEMPTS - 1
    expected_code = "error" if isinstance(failure, Exception) else None
    if expected_code:
        assert rig.codes == [("history", "error")] * MAX_ATTEMPTS
    assert_no_secrets(str(info.value))


def test_tls_failure_suggests_ca_file() -> None:
    rig = Rig(script(httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] self-signed")))
    with pytest.raises(RocketChatError) as info:
        rig.client.fetch_history_day(DAY)
    assert "ca_file" in str(info.value)


# ---- rate limits --------------------------------------------------------------------------------

TOO_MANY = (
    "Error, too many requests. Please slow down. You must wait 7 seconds before trying this "
    "endpoint again. [error-too-many-requests]"
)


def test_429_waits_until_reset_then_retries() -> None:
    reset_ms = str(int((NOW + 42) * 1000))
    rig = Rig(
        script(
            err(
                429,
                TOO_MANY,
                {
                    "x-ratelimit-limit": "10",
                    "x-ratelimit-remaining": "0",
                    "x-ratelimit-reset": reset_ms,
                },
            ),
            ok(history_body(["a"])),
        )
    )
    rig.client.fetch_history_day(DAY)
    assert rig.codes == [("history", "429"), ("history", "200")]
    assert sum(rig.clock.sleeps) == pytest.approx(42 + RESET_MARGIN_SECONDS)
    assert rig.clock.now >= NOW + 42  # the retry went after the reset
    assert rig.client.rate_limit_wait_seconds == pytest.approx(42 + RESET_MARGIN_SECONDS)


def test_429_retry_after_header() -> None:
    rig = Rig(script(err(429, "slow down", {"retry-after": "3"}), ok(history_body(["a"]))))
    rig.client.fetch_history_day(DAY)
    assert rig.clock.sleeps == [3.0]


def test_429_wait_from_body_text() -> None:
    rig = Rig(script(err(429, TOO_MANY), ok(history_body(["a"]))))
    rig.client.fetch_history_day(DAY)
    assert rig.clock.sleeps == [pytest.approx(7 + RESET_MARGIN_SECONDS)]


def test_429_is_bounded() -> None:
    rig = Rig(script(err(429, TOO_MANY)))
    with pytest.raises(RocketChatError) as info:
        rig.client.fetch_history_day(DAY)
    assert info.value.reason == "rate_limited" and info.value.status == 429
    assert "error-too-many-requests" in str(info.value)
    assert len(rig.recorder.requests) == 3


class WindowLimiter:
    """Rocket.Chat's fixed-window limiter on the fake clock (10 calls / 60 s per route)."""

    def __init__(self, clock: FakeClock, inner: Handler, limit: int = 10, window: float = 60.0):
        self.clock, self.inner, self.limit, self.window = clock, inner, limit, window
        self.start: dict[str, float] = {}
        self.used: dict[str, int] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        route, now = request.url.path, self.clock()
        if now >= self.start.get(route, -1e18) + self.window:
            self.start[route], self.used[route] = now, 0
        reset = self.start[route] + self.window
        self.used[route] += 1
        remaining = self.limit - self.used[route]
        headers = {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(max(0, remaining)),
            "x-ratelimit-reset": str(int(reset * 1000)),
        }
        if remaining < 0:
            return err(429, TOO_MANY, headers)
        response = self.inner(request)
        response.headers.update(headers)
        return response


def test_pacing_avoids_429_on_a_default_server() -> None:
    rig = Rig(script(ok({})))  # replaced below: the limiter needs the rig's clock
    limiter = WindowLimiter(rig.clock, paged_history(["a", "b"]))
    rig.recorder.handler = limiter
    for _ in range(25):
        rig.client.fetch_history_day(DAY)
    assert ("history", "429") not in rig.codes
    assert len(rig.codes) == 25
    # Two full windows were spent, so two waits for the reset.
    assert len(rig.clock.sleeps) == 2
    assert rig.clock.now - NOW == pytest.approx(120 + 2 * RESET_MARGIN_SECONDS)
    assert rig.client.requests_per_poll == {"history": 1}
    assert rig.client.min_poll_interval == pytest.approx(6.0)


def test_min_poll_interval_grows_with_pages() -> None:
    rig = Rig(script(ok({})))
    rig.recorder.handler = WindowLimiter(rig.clock, paged_history(names(250), infinite=False))
    rig.client.fetch_history_day(DAY)
    assert rig.client.requests_per_poll == {"history": 3}
    assert rig.client.min_poll_interval == pytest.approx(20.0)  # 3 polls of 3 pages per minute


def test_no_rate_limit_headers_no_pacing() -> None:
    rig = Rig(paged_history(["a"]))
    for _ in range(30):
        rig.client.fetch_history_day(DAY)
    assert rig.clock.sleeps == [] and rig.client.min_poll_interval == 0


def test_stop_interrupts_a_rate_limit_wait_in_real_time() -> None:
    stop = threading.Event()
    client = RocketChatClient(
        server_config(),
        transport=httpx.MockTransport(script(err(429, "slow", {"retry-after": "30"}))),
        stop=stop,  # default sleep: waits on the event
    )
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    with pytest.raises(Stopped):
        client.fetch_history_day(DAY)
    assert time.monotonic() - started < 5


def test_stop_set_before_a_request_sends_nothing() -> None:
    stop = threading.Event()
    stop.set()
    rig = Rig(paged_history(["a"]), stop=stop)
    with pytest.raises(Stopped):
        rig.client.fetch_history_day(DAY)
    assert rig.recorder.requests == []


# ---- live status --------------------------------------------------------------------------------


def users_body(users: list[dict], total: int, offset: int = 0) -> dict:
    return {"users": users, "count": len(users), "offset": offset, "total": total, "success": True}


def agents_route(population: list[dict], infinite: bool = False) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        count = page_size(request, infinite)
        offset = int(request.url.params.get("offset", 0))
        return ok(users_body(population[offset : offset + count], len(population), offset))

    return handler


def live_server(
    population: list[dict], *, forbidden: Callable[[], bool] = lambda: False
) -> Handler:
    users = agents_route(population)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == AGENTS:
            if forbidden():
                return err(
                    403,
                    "User does not have the permissions required for this action [error-unauthorized]",
                )
            return users(request)
        if request.url.path == STATUS:
            return ok({"available": 3, "away": 1, "busy": 0, "offline": 6, "success": True})
        return httpx.Response(404)

    return handler


def population(n: int) -> list[dict]:
    statuses = [("online", "available"), ("away", "available"), ("online", "not-available")]
    return [
        {
            "_id": f"id{i}",
            "username": f"u{i:04d}",
            "status": statuses[i % 3][0],
            "statusLivechat": statuses[i % 3][1],
        }
        for i in range(n)
    ]


def test_live_status_per_agent_paginated() -> None:
    rig = Rig(live_server(population(150)))
    live = rig.client.fetch_live_status()
    assert live.agents is not None and len(live.agents) == 150
    assert live.counts == {"available": 50, "away": 50, "busy": 0, "offline": 50}
    assert rig.recorder.paths() == [AGENTS, AGENTS]
    assert rig.client.requests_per_poll == {"agents": 2}
    assert not rig.client.live_fallback


def test_live_status_falls_back_to_chart_and_retries_every_10th_poll(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="exporter.client")
    forbidden = {"yes": True}
    rig = Rig(live_server(population(3), forbidden=lambda: forbidden["yes"]))
    live = rig.client.fetch_live_status()
    assert live.agents is None
    assert live.counts == {"available": 3, "away": 1, "busy": 0, "offline": 6}
    assert rig.recorder.paths() == [AGENTS, STATUS]
    assert rig.client.live_fallback and rig.client.requests_per_poll == {"agents_status": 1}
    for _ in range(10):
        rig.client.fetch_live_status()
    paths = rig.recorder.paths()
    assert paths.count(AGENTS) == 2  # the refused poll and the 10th after it
    assert paths[-2:] == [AGENTS, STATUS]
    forbidden["yes"] = False  # permission granted
    for _ in range(10):
        last = rig.client.fetch_live_status()
    assert last.agents is not None and not rig.client.live_fallback
    levels = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [lvl for lvl, _ in levels] == ["WARNING", "INFO"]
    assert "agents-status" in levels[0][1]


def test_failed_retry_of_the_per_agent_route_still_uses_the_chart() -> None:
    answers = {AGENTS: err(403, "unauthorized")}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == STATUS:
            return ok({"available": 2, "away": 0, "busy": 0, "offline": 1})
        return answers[AGENTS]

    rig = Rig(handler)
    rig.client.fetch_live_status()
    answers[AGENTS] = err(500, "Internal server error")
    for _ in range(10):  # the 10th re-tries the per-agent route, which now fails with 500s
        live = rig.client.fetch_live_status()
    assert live.agents is None and live.counts["available"] == 2
    assert rig.codes.count(("agents", "500")) == MAX_ATTEMPTS


def test_live_status_404_falls_back_too() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == STATUS:
            return ok({"available": 1, "away": 0, "busy": 0, "offline": 0})
        return httpx.Response(404, json={"success": False, "error": "Not found"})

    rig = Rig(handler)
    assert rig.client.fetch_live_status().counts["available"] == 1


def test_live_status_both_forbidden_is_a_permission_error() -> None:
    rig = Rig(script(err(403, "unauthorized")))
    with pytest.raises(RocketChatError) as info:
        rig.client.fetch_live_status()
    assert info.value.reason == "permission"
    assert "view-livechat-manager" in str(info.value)


def test_live_status_auth_error_does_not_fall_back() -> None:
    rig = Rig(
        script(
            httpx.Response(
                401, json={"status": "error", "message": "You must be logged in to do this."}
            )
        )
    )
    with pytest.raises(RocketChatError) as info:
        rig.client.fetch_live_status()
    assert info.value.reason == "auth" and rig.recorder.paths() == [AGENTS]


def test_live_status_pagination_rejected() -> None:
    people = population(70)

    def handler(request: httpx.Request) -> httpx.Response:
        if "count" in request.url.params:
            return err(400, "must NOT have additional properties [invalid-params]")
        return ok(users_body(people[:50], 70))

    rig = Rig(handler)
    live = rig.client.fetch_live_status()
    assert live.agents is not None and len(live.agents) == 50
    assert rig.client.missing_agents == {"agents": 20}


# ---- info ---------------------------------------------------------------------------------------


def test_fetch_info_without_credentials() -> None:
    rig = Rig(script(ok({"version": "6.13.1", "success": True})))
    assert rig.client.fetch_info()["version"] == "6.13.1"
    req = rig.recorder.requests[0]
    assert req.url.path == "/api/info" and "X-Auth-Token" not in req.headers
    assert rig.codes == [("info", "200")]


def test_fetch_info_not_an_object() -> None:
    rig = Rig(script(ok(["6.13.1"])))
    with pytest.raises(RocketChatError) as info:
        rig.client.fetch_info()
    assert info.value.reason == "invalid_response"


def test_url_with_a_path_prefix() -> None:
    rig = Rig(script(ok({"version": "7.0.0"})), url="https://example.com/chat")
    rig.client.fetch_info()
    assert rig.recorder.requests[0].url.path == "/chat/api/info"


# ---- logging once per change of state, never a secret -------------------------------------------


def test_failures_log_once_per_state_change(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="exporter.client")
    answers = {"next": err(403, "unauthorized")}
    rig = Rig(lambda r: answers["next"])
    for _ in range(3):
        with pytest.raises(RocketChatError):
            rig.client.fetch_history_day(DAY)
    answers["next"] = httpx.Response(401, json={"message": "You must be logged in to do this."})
    for _ in range(3):
        with pytest.raises(RocketChatError):
            rig.client.fetch_history_day(DAY)
    answers["next"] = ok(history_body(["a"]))
    for _ in range(3):
        rig.client.fetch_history_day(DAY)
    records = [(r.levelname, getattr(r, "reason", None), r.getMessage()) for r in caplog.records]
    assert records == [
        ("WARNING", "permission", "Rocket.Chat request failed"),
        ("WARNING", "auth", "Rocket.Chat request failed"),
        ("INFO", None, "Rocket.Chat request recovered"),
    ]
    assert "unauthorized" in caplog.records[0].err  # type: ignore[attr-defined]


def echoing_server(request: httpx.Request) -> httpx.Response:
    """A hostile proxy that puts the credentials it got into every error text."""
    leak = f"{request.headers.get('X-User-Id')} {request.headers.get('X-Auth-Token')}"
    path = request.url.path
    if path == HISTORY:
        return err(403, f"user {leak} lacks view-livechat-manager")
    if path == AGENTS:
        return err(500, f"crash for {leak}")
    return httpx.Response(502, text=f"<title>gateway {leak}</title>")


def test_secrets_never_in_messages_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    rig = Rig(echoing_server)
    messages = []
    calls = (
        lambda: rig.client.fetch_history_day(DAY),
        rig.client.fetch_live_status,
        rig.client.fetch_info,
    )
    for call in calls:
        with pytest.raises(RocketChatError) as info:
            call()
        messages += [str(info.value), repr(info.value)]
    assert "<redacted>" in messages[0]
    assert_no_secrets(*messages, *log_texts(caplog))
    assert len(caplog.records) >= 3


# ---- anything the server sends: only RocketChatError --------------------------------------------

_json = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(max_size=20),
        st.sampled_from(["2024-03-05T08:00:00Z", "available", "online"]),
    ),
    lambda kids: st.one_of(
        st.lists(kids, max_size=4),
        st.dictionaries(
            st.sampled_from(
                [
                    "agents",
                    "users",
                    "username",
                    "serviceHistory",
                    "startedAt",
                    "stoppedAt",
                    "total",
                    "success",
                    "error",
                    "available",
                ]
            ),
            kids,
            max_size=5,
        ),
    ),
    max_leaves=25,
)
_bodies = st.one_of(
    _json.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from([200, 200, 200, 400, 401, 403, 404, 429, 500, 302]),
    _bodies,
    st.dictionaries(
        st.sampled_from(
            [
                "x-ratelimit-reset",
                "x-ratelimit-remaining",
                "x-ratelimit-limit",
                "retry-after",
                "content-type",
            ]
        ),
        st.text(alphabet="0123456789abc-:. ", max_size=15),
        max_size=3,
    ),
)
def test_any_answer_raises_only_rocketchat_error(
    status: int, content: bytes, headers: dict
) -> None:
    rig = Rig(lambda r: httpx.Response(status, content=content, headers=headers))
    for call in (
        lambda: rig.client.fetch_history_day(DAY),
        rig.client.fetch_live_status,
        rig.client.fetch_info,
    ):
        try:
            call()
        except RocketChatError as exc:
            assert exc.reason in REASONS


def test_unreadable_ca_file_is_a_clear_error_not_a_crash(tmp_path) -> None:
    client = RocketChatClient(server_config(ca_file=str(tmp_path / "missing.pem")))
    with pytest.raises(RocketChatError) as info:
        client.fetch_info()
    assert info.value.reason == "network" and "ca_file" in str(info.value)
    client.close()
