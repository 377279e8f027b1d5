"""RocketChatClient over real HTTP against the Rocket.Chat simulator on 127.0.0.1.

The simulator runs on a ManualClock and the client sleeps by advancing that clock, so rate
limit windows and backoff pass instantly while the HTTP, the limiter and the pagination
behave as Rocket.Chat's do.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from exporter.config.model import Secret, ServerConfig
from exporter.model import LIVE_STATUSES, Interval
from exporter.rocketchat.client import RocketChatClient
from exporter.rocketchat.errors import RocketChatError
from exporter.simulator import ManualClock, Simulator, SimulatorConfig, serve

USER_ID = "Xq7pL2mN9vB4cR8tY"
TOKEN = "kJ3hG5fD7sA9pO1iU2yT4rE6wQ8zX0cV2bN4mL6kJ8h"
TZ = "America/New_York"
T0 = datetime(2024, 3, 5, 10, 0, tzinfo=ZoneInfo(TZ)).timestamp()
DAY = date(2024, 3, 5)


class Rig:
    def __init__(self, tmp_server: Iterator | None = None, **config: object):
        self.clock = ManualClock(T0)
        settings: dict[str, object] = {
            "agents": 0,
            "seed": 3,
            "timezone": TZ,
            "user_id": USER_ID,
            "auth_token": TOKEN,
        }
        settings.update(config)
        self.sim = Simulator(SimulatorConfig(**settings), clock=self.clock)  # type: ignore[arg-type]
        self.server = serve(self.sim, host="127.0.0.1", port=0)
        self.codes: list[tuple[str, str]] = []
        self.client = RocketChatClient(
            ServerConfig(
                name="sim",
                url=self.server.url,
                user_id=Secret(value=USER_ID, key="servers[0].user_id"),
                auth_token=Secret(value=TOKEN, key="servers[0].auth_token"),
                timezone=TZ,
                timeout=5.0,
            ),
            on_request=lambda e, c: self.codes.append((e, c)),
            sleep=self.clock.advance,
            clock=self.clock.now,
        )

    def close(self) -> None:
        self.client.close()
        self.server.stop()


@pytest.fixture
def rig_factory() -> Iterator:
    rigs: list[Rig] = []

    def make(**config: object) -> Rig:
        rig = Rig(**config)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.close()


def at(hour: int, minute: int = 0) -> float:
    """Unix time of 2024-03-05 hour:minute in New York."""
    return datetime(2024, 3, 5, hour, minute, tzinfo=ZoneInfo(TZ)).timestamp()


def test_fetch_one_day_exactly(rig_factory) -> None:
    rig = rig_factory()
    rig.sim.add_session("alice", at(8), at(9))
    rig.sim.add_session("alice", at(9, 30), at(9, 45))
    rig.sim.add_session("bob", at(7), None)  # still open: listed, no entries, no time
    rig.clock.set(at(10))
    day = rig.client.fetch_history_day(DAY)
    assert set(day.agents) == {"alice", "bob"}
    assert day.agents["alice"].intervals == (
        Interval(at(8), at(9)),
        Interval(at(9, 30), at(9, 45)),
    )
    assert day.agents["alice"].reported_seconds == 4500
    assert day.agents["bob"].intervals == ()
    assert day.total == 2 and day.missing_agents == 0
    assert rig.sim.requests == {("history", 200): 1}
    assert rig.codes == [("history", "200")]


def test_info(rig_factory) -> None:
    rig = rig_factory(pagination="rejected")
    assert rig.client.fetch_info()["version"] == "7.0.0"


def test_count_zero_fetches_a_whole_day_in_one_request(rig_factory) -> None:
    rig = rig_factory(agents=260, off_day_rate=0.0, rate_limit=0)
    rig.clock.set(at(23))
    day = rig.client.fetch_history_day(DAY)
    assert day.total > 200 and len(day.agents) == day.total and day.missing_agents == 0
    assert rig.sim.requests == {("history", 200): 1}
    assert rig.client.requests_per_poll == {"history": 1}
    assert sum(len(a.intervals) for a in day.agents.values()) > day.total


def test_infinite_count_off_fetches_every_page(rig_factory) -> None:
    rig = rig_factory(agents=260, off_day_rate=0.0, rate_limit=0, allow_infinite_count=False)
    rig.clock.set(at(23))
    day = rig.client.fetch_history_day(DAY)
    assert day.total > 200 and len(day.agents) == day.total and day.missing_agents == 0
    # count=0 gets the default 50; then pages of 100 from offset 50.
    pages = 1 + -(-(day.total - 50) // 100)
    assert rig.sim.requests == {("history", 200): pages}
    assert rig.client.requests_per_poll == {"history": pages}


def test_pagination_rejected_falls_back_and_reports_truncation(
    rig_factory, caplog: pytest.LogCaptureFixture
) -> None:
    rig = rig_factory(agents=120, off_day_rate=0.0, pagination="rejected", rate_limit=0)
    rig.clock.set(at(23))
    first = rig.client.fetch_history_day(DAY)
    second = rig.client.fetch_history_day(DAY)
    assert len(first.agents) == 50 and first.total == 120 and first.missing_agents == 70
    assert second.missing_agents == 70
    assert rig.sim.requests == {("history", 400): 1, ("history", 200): 2}
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "received 50 of 120 agents" in warnings[0]


def test_live_status_per_agent_matches_the_chart(rig_factory) -> None:
    rig = rig_factory(agents=130, rate_limit=0, agents_status_cache=0)
    rig.clock.set(at(11))
    live = rig.client.fetch_live_status()
    assert live.agents is not None and len(live.agents) == 130
    assert rig.sim.requests == {("agents", 200): 1}  # count=0: everyone at once
    rig.sim.forbid("agents")
    chart = rig.client.fetch_live_status()
    assert chart.agents is None
    assert chart.counts == live.counts  # the same buckets, computed by the "server"
    assert sum(chart.counts.values()) == 130 and set(chart.counts) == set(LIVE_STATUSES)
    assert rig.client.live_fallback
    assert rig.sim.requests[("agents", 403)] == 1
    assert rig.sim.requests[("agents_status", 200)] == 1


def test_forbidden_users_route_from_the_start(rig_factory) -> None:
    rig = rig_factory(agents=20, rate_limit=0, forbidden=frozenset({"agents"}))
    for _ in range(12):
        live = rig.client.fetch_live_status()
        assert live.agents is None and sum(live.counts.values()) == 20
    # Tried on the first poll and again on the 11th (10 polls after the refusal).
    assert rig.sim.requests == {("agents", 403): 2, ("agents_status", 200): 12}


def test_rate_limit_pacing_yields_no_429(rig_factory) -> None:
    rig = rig_factory(agents=5, rate_limit=10, rate_window=60)
    rig.clock.set(at(12))
    for _ in range(12):
        rig.client.fetch_history_day(DAY)
    assert rig.sim.requests == {("history", 200): 12}
    assert rig.client.rate_limit_wait_seconds > 0  # it did wait for the window
    assert rig.client.min_poll_interval > 0


def test_rate_limit_bypass_means_no_pacing(rig_factory) -> None:
    rig = rig_factory(agents=5, rate_limit=10, rate_limit_bypass=True)
    start = rig.clock.now()
    for _ in range(15):
        rig.client.fetch_history_day(DAY)
    assert rig.clock.now() == start and rig.client.min_poll_interval == 0


def test_429_from_a_shared_budget_is_waited_out(rig_factory) -> None:
    rig = rig_factory(agents=5, rate_limit=3, rate_window=60)
    other = RocketChatClient(  # another exporter replica, invisible to our pacer
        rig.client.server, sleep=rig.clock.advance, clock=rig.clock.now
    )
    try:
        for _ in range(3):
            other.fetch_history_day(DAY)
    finally:
        other.close()
    rig.client.fetch_history_day(DAY)
    assert rig.sim.requests == {("history", 200): 4, ("history", 429): 1}
    assert rig.client.rate_limit_wait_seconds > 0


@pytest.mark.parametrize("fault", ["error", "html", "drop", "drop_mid_body", "truncate"])
def test_transient_faults_are_retried(rig_factory, fault: str) -> None:
    rig = rig_factory(agents=10, rate_limit=0)
    rig.sim.faults.inject(fault, times=2, route="history")
    day = rig.client.fetch_history_day(DAY)
    assert day.total >= len(day.agents)
    assert rig.sim.request_total("history") == 3


def test_persistent_5xx_is_a_server_error(rig_factory) -> None:
    rig = rig_factory(agents=3, rate_limit=0)
    rig.sim.faults.error_status = 503
    rig.sim.faults.set_rate("error", 1.0)
    with pytest.raises(RocketChatError) as info:
        rig.client.fetch_history_day(DAY)
    assert info.value.reason == "server_error" and "Service Unavailable" in str(info.value)
    assert rig.sim.request_total() == 3


@pytest.mark.parametrize(
    ("setup", "reason", "needle"),
    [
        (lambda sim: sim.revoke_token(), "auth", "You must be logged in to do this."),
        (lambda sim: sim.forbid("history"), "permission", "view-livechat-manager"),
        (lambda sim: setattr(sim, "licence", False), "licence", "error-action-not-allowed"),
    ],
)
def test_final_errors(rig_factory, setup, reason: str, needle: str, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    rig = rig_factory(agents=3, rate_limit=0)
    setup(rig.sim)
    with pytest.raises(RocketChatError) as info:
        rig.client.fetch_history_day(DAY)
    assert info.value.reason == reason and needle in str(info.value)
    assert rig.sim.request_total() == 1
    texts = [str(info.value)] + [r.getMessage() + repr(r.__dict__) for r in caplog.records]
    for text in texts:
        assert USER_ID not in text and TOKEN not in text


def test_old_unlicensed_server_404_is_licence(rig_factory) -> None:
    rig = rig_factory(agents=3, rate_limit=0, licence=False, unlicensed="old")
    with pytest.raises(RocketChatError) as info:
        rig.client.fetch_history_day(DAY)
    assert info.value.reason == "licence" and info.value.status == 404


def test_schema_drift_is_counted_not_fatal(rig_factory) -> None:
    rig = rig_factory(agents=40, off_day_rate=0.0, rate_limit=0)
    rig.clock.set(at(23))
    clean = rig.client.fetch_history_day(DAY)
    rig.sim.faults.set_drift(
        "missing_keys", "null_stopped_at", "naive_dates", "extra_fields", "double_stop"
    )
    drifted = rig.client.fetch_history_day(DAY)
    assert drifted.stats.skipped_agents > 0  # every 5th lacks a username
    assert drifted.stats.skipped_entries > 0  # null stoppedAt
    assert drifted.stats.merged_entries > 0  # the repeated stop
    # Naive dates are read as UTC: the surviving agents' intervals start where they did.
    for name, agent in drifted.agents.items():
        assert agent.intervals[0].start == clean.agents[name].intervals[0].start
