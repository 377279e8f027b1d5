"""Per-route pacing from rate-limit headers (pure: `now` is a parameter)."""

from __future__ import annotations

import pytest

from exporter.rocketchat.ratelimit import (
    DEFAULT_429_WAIT_SECONDS,
    MAX_WAIT_SECONDS,
    RESET_MARGIN_SECONDS,
    RateLimiter,
    reset_time,
    retry_after_429,
)

NOW = 1_700_000_000.0


def headers(limit: int, remaining: int, reset_in: float) -> dict[str, str]:
    return {
        "x-ratelimit-limit": str(limit),
        "x-ratelimit-remaining": str(remaining),
        "x-ratelimit-reset": str(int((NOW + reset_in) * 1000)),
    }


def test_no_headers_no_pacing() -> None:
    rl = RateLimiter()
    rl.observe("history", {}, NOW)
    assert rl.delay("history", NOW) == 0
    assert rl.min_interval("history", 5) == 0


def test_budget_left_means_no_wait() -> None:
    rl = RateLimiter()
    rl.observe("history", headers(10, 1, 30), NOW)
    assert rl.delay("history", NOW) == 0


def test_spent_budget_waits_until_reset_per_route() -> None:
    rl = RateLimiter()
    rl.observe("history", headers(10, 0, 30), NOW)
    assert rl.delay("history", NOW) == pytest.approx(30 + RESET_MARGIN_SECONDS)
    assert rl.delay("history", NOW + 10) == pytest.approx(20 + RESET_MARGIN_SECONDS)
    # At the reset itself Rocket.Chat still counts the old window (it resets only once its
    # clock is past it): the margin still applies.
    assert rl.delay("history", NOW + 30) == pytest.approx(RESET_MARGIN_SECONDS)
    assert rl.delay("history", NOW + 30 + RESET_MARGIN_SECONDS) == 0
    assert rl.delay("history", NOW + 31) == 0  # the window has reset
    assert rl.delay("agents", NOW) == 0  # other routes have their own budget


def test_headers_vanishing_clears_pacing() -> None:
    rl = RateLimiter()
    rl.observe("history", headers(10, 0, 30), NOW)
    rl.observe("history", {}, NOW)  # e.g. api-bypass-rate-limit granted
    assert rl.delay("history", NOW) == 0


def test_absurd_reset_is_capped() -> None:
    rl = RateLimiter()
    rl.observe("history", headers(10, 0, 10**7), NOW)
    assert rl.delay("history", NOW) == MAX_WAIT_SECONDS


def test_exhausted_after_429() -> None:
    rl = RateLimiter()
    rl.observe("history", headers(10, 3, 40), NOW)
    rl.exhausted("history")
    assert rl.delay("history", NOW) == pytest.approx(40 + RESET_MARGIN_SECONDS)


def test_learned_window_gives_min_poll_interval() -> None:
    rl = RateLimiter()
    rl.observe("history", headers(10, 9, 60), NOW)  # first call of a window: reset = window
    rl.observe("history", headers(10, 8, 50), NOW + 10)
    assert rl.budget("history").window == pytest.approx(60)
    assert rl.min_interval("history", 1) == pytest.approx(6)  # 10 polls per 60 s
    assert rl.min_interval("history", 3) == pytest.approx(20)  # 3 polls of 3 per window
    assert rl.min_interval("history", 10) == pytest.approx(60)
    assert rl.min_interval("history", 25) == pytest.approx(180)  # spans three windows


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(int(NOW * 1000) + 5000, NOW + 5), (int(NOW) + 5, NOW + 5), (5, NOW + 5)],
)
def test_reset_time_units(raw: int, expected: float) -> None:
    assert reset_time(raw, NOW) == pytest.approx(expected)


def test_retry_after_429_sources_in_order() -> None:
    body = "Error, too many requests. You must wait 17 seconds before trying this endpoint again."
    assert retry_after_429(headers(10, 0, 12), body, NOW) == pytest.approx(
        12 + RESET_MARGIN_SECONDS
    )
    assert retry_after_429({"retry-after": "7"}, body, NOW) == 7
    assert retry_after_429({"retry-after": "Tue, 14 Nov 2023 22:13:40 GMT"}, "", NOW) == 20
    assert retry_after_429({}, body, NOW) == pytest.approx(17 + RESET_MARGIN_SECONDS)
    assert retry_after_429({}, "slow down", NOW) == DEFAULT_429_WAIT_SECONDS
    # A reset already in the past says nothing: fall through to the body.
    assert retry_after_429(headers(10, 0, -5), body, NOW) == pytest.approx(
        17 + RESET_MARGIN_SECONDS
    )
