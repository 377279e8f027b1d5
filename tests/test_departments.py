"""Departments, the queue and load through the real path: the simulator over HTTP, the real
client, poller, snapshot and exposition, with every figure computed by hand below.

The scene (T0 = Wed 2026-03-04 10:00 UTC; polls at 10:00 and 10:10; window 1h = 09:10-10:10):

    alice  Sales            available 09:00-09:30 (closed)
    bob    Sales, Billing   available from 09:15, still open; limit 2 chats; serves 1 Billing chat
    carol  Billing          available 09:40-09:50 (closed)
    dave   (no department)  available from 09:50, still open; serves 1 chat without department

The open sessions are known to the exporter only from its first poll on (10:00-10:10): Rocket.Chat
reports nothing of a session until it closes. Queue at 10:10: Billing 10:02 and 10:05, Sales
10:08, no department 10:09.
"""

from __future__ import annotations

import logging

import pytest

from exporter.config.model import Departments
from exporter.departments import NO_DEPARTMENT, selected
from exporter.exposition import FAMILIES, PREFIX
from exporter.model import Department
from tests.support.faultrig import T0, Rig, warnings_from

NEW_FAMILIES = {
    PREFIX + f.name
    for f in FAMILIES[FAMILIES.index(next(f for f in FAMILIES if f.name == "omnichannel_known")) :]
}
BILLING_RULE = {
    "days": "mon-fri",
    "from": "08:00",
    "to": "18:00",
    "agents": 2,
    "department": "Billing",
}


def _scene(rig: Rig) -> dict[str, str]:
    sim = rig.sim
    sim.add_session("alice", T0 - 3600, T0 - 1800)
    sim.add_session("bob", T0 - 2700)
    sim.add_session("carol", T0 - 1200, T0 - 600)
    sim.add_session("dave", T0 - 600)
    sales = sim.omni.add_department("Sales")
    billing = sim.omni.add_department("Billing")
    sim.omni.assign("alice", sales)
    sim.omni.assign("bob", sales, billing, max_chats=2)
    sim.omni.assign("carol", billing)
    sim.omni.take(sim.omni.enqueue(T0 - 1000, billing), "bob")
    sim.omni.take(sim.omni.enqueue(T0 - 900, None), "dave")
    return {"sales": sales, "billing": billing}


def _rig(**extra) -> Rig:
    config = {"departments": "all", "chats_per_agent": 3, "queue_wait_warning": "4m"}
    config.update(extra)
    return Rig(
        agents=0,
        windows=("1h",),
        config_extra=config,
        server_extra={"staffing": {"rules": [BILLING_RULE]}},
    )


@pytest.fixture
def rig():
    r = _rig()
    yield r
    r.close()


def test_department_figures_match_the_hand_computed_scene(rig):
    ids = _scene(rig)
    assert rig.poll()
    rig.clock.advance(120)
    rig.sim.omni.enqueue(T0 + 120, ids["billing"])
    rig.sim.omni.enqueue(T0 + 300, ids["billing"])
    rig.sim.omni.enqueue(T0 + 480, ids["sales"])
    rig.sim.omni.enqueue(T0 + 540, None)
    assert rig.poll(480)  # 10:10

    def dep(name: str, department: str, **labels: str) -> float | None:
        return rig.value(name, department=department, **labels)

    w = {"window": "1h"}
    # Sales: alice 09:10-09:30, bob 10:00-10:10 -> 1, 0, 1 over 20, 30, 10 minutes.
    assert dep("department_agents_active", "Sales", **w) == 2
    assert dep("department_available_agents_min", "Sales", **w) == 0
    assert dep("department_available_agents_max", "Sales", **w) == 1
    assert dep("department_available_agents_avg", "Sales", **w) == pytest.approx(30 / 60)
    assert dep("department_unstaffed_seconds", "Sales", **w) == 1800
    assert dep("department_understaffed_seconds", "Sales", **w) is None  # no schedule
    assert dep("department_required_agents", "Sales") is None
    # Billing: carol 09:40-09:50, bob 10:00-10:10; the schedule wants 2 all hour.
    assert dep("department_agents_active", "Billing", **w) == 2
    assert dep("department_available_agents_avg", "Billing", **w) == pytest.approx(20 / 60)
    assert dep("department_unstaffed_seconds", "Billing", **w) == 2400
    assert dep("department_understaffed_seconds", "Billing", **w) == 3600
    assert dep("department_required_agents", "Billing") == 2
    # No department: dave 10:00-10:10.
    assert dep("department_agents_active", NO_DEPARTMENT, **w) == 1
    assert dep("department_unstaffed_seconds", NO_DEPARTMENT, **w) == 3000
    # Live status by department.
    for name, offline in (("Sales", 1), ("Billing", 1), (NO_DEPARTMENT, 0)):
        assert dep("department_agents", name, status="available") == 1
        assert dep("department_agents", name, status="offline") == offline
    # The queue: 4 waiting, the oldest created at 10:02.
    assert rig.value("queued_chats") == 4
    assert rig.value("queue_oldest_created_timestamp_seconds") == T0 + 120
    assert rig.value("queue_wait_warning_seconds") == 240
    assert dep("department_queued_chats", "Billing") == 2
    assert dep("department_queue_oldest_created_timestamp_seconds", "Billing") == T0 + 120
    assert dep("department_queued_chats", "Sales") == 1
    assert dep("department_queue_oldest_created_timestamp_seconds", "Sales") == T0 + 480
    assert dep("department_queued_chats", NO_DEPARTMENT) == 1
    # Load: bob (limit 2) serves 1 Billing chat, dave (no limit: chats_per_agent 3) 1 chat.
    assert dep("department_open_chats", "Billing") == 1
    assert dep("department_open_chats", "Sales") == 0
    assert dep("department_open_chats", NO_DEPARTMENT) == 1
    assert dep("department_chat_slots", "Sales") == 2
    assert dep("department_chat_slots", "Billing") == 2
    assert dep("department_chat_slots", NO_DEPARTMENT) == 3
    assert dep("department_occupancy_ratio", "Billing") == 0.5
    assert dep("department_occupancy_ratio", "Sales") == 0
    assert dep("department_occupancy_ratio", NO_DEPARTMENT) == pytest.approx(1 / 3)
    assert rig.value("agent_open_chats", agent="bob") == 1
    assert rig.value("agent_open_chats", agent="dave") == 1
    for part in ("departments", "membership", "queue", "load"):
        assert rig.value("omnichannel_known", part=part) == 1
    # Cost: departments once (refresh every 10 polls), queue and load once per poll.
    assert rig.api("departments", "200") == 1
    assert rig.api("inquiries", "200") == 2
    assert rig.api("load", "200") == 2


def test_departments_none_asks_nothing_new_and_adds_no_series():
    r = Rig(agents=0, windows=("1h",))
    try:
        _scene(r)
        assert r.poll() and r.poll(60)
        assert {name for name, _ in r.samples()}.isdisjoint(NEW_FAMILIES)
        assert all(r.sim.request_total(x) == 0 for x in ("departments", "inquiries", "load"))
        assert r.config.departments == Departments()
    finally:
        r.close()


@pytest.mark.parametrize(
    ("route", "how", "unknown"),
    [
        ("inquiries", "forbid", "queue"),
        ("load", "forbid", "load"),
        ("departments", "forbid", "departments"),
        ("inquiries", "unregister", "queue"),
        ("departments", "unregister", "departments"),
    ],
)
def test_a_refused_route_is_unknown_not_zero_and_availability_goes_on(
    rig, caplog, route, how, unknown
):
    _scene(rig)
    rig.sim.omni.enqueue(T0 - 60, None)
    if how == "forbid":
        rig.sim.forbid(route)
    else:
        rig.sim.unregistered.add(route)
    caplog.set_level(logging.INFO)
    assert rig.polls(3) == [True, True, True]
    assert rig.up() == 1
    assert rig.value("omnichannel_known", part=unknown) == 0
    assert rig.value("agents_active", window="1h") is not None  # availability untouched
    if unknown == "queue":
        assert rig.value("queued_chats") is None  # absent, not 0
        assert rig.value("department_queued_chats", department=NO_DEPARTMENT) is None
    if unknown == "load":
        assert rig.value("department_open_chats", department="Billing") is None
        assert rig.value("department_occupancy_ratio", department="Billing") is None
    if unknown == "departments":
        assert rig.value("department_agents_active", department="Sales", window="1h") is None
        assert rig.value("queued_chats") == 1  # the queue does not need the departments
    warned = [w for w in warnings_from(caplog) if "failed" in w or "refused" in w]
    assert len(warned) == 1, warned
    assert rig.errors("permission") == 0 and rig.errors("invalid_response") == 0


def test_unknown_configured_name_is_reported_once_with_the_existing_names(caplog):
    r = _rig(departments=["Sales", "Suport"])
    try:
        _scene(r)
        caplog.set_level(logging.WARNING)
        assert r.polls(12) == [True] * 12  # two department refreshes
        warned = [w for w in warnings_from(caplog) if "match no department" in w]
        assert len(warned) == 1, warned
        assert "Suport" in warned[0] and "Billing, Sales" in warned[0]
        assert r.value("department_agents", department="Sales", status="available") == 1
        assert r.value("department_agents", department="Billing", status="available") is None
    finally:
        r.close()


def test_a_staffing_rule_naming_no_department_is_reported_once(caplog):
    r = Rig(
        agents=0,
        windows=("1h",),
        config_extra={"departments": "all"},
        server_extra={"staffing": {"rules": [{**BILLING_RULE, "department": "Biling"}]}},
    )
    try:
        _scene(r)
        caplog.set_level(logging.WARNING)
        assert r.polls(11) == [True] * 11
        warned = [w for w in warnings_from(caplog) if "match no department" in w]
        assert len(warned) == 1 and "Biling" in warned[0], warned
        assert r.value("department_required_agents", department="Billing") is None
    finally:
        r.close()


def test_a_department_renamed_or_deleted_while_running(rig):
    ids = _scene(rig)
    rig.sim.omni.enqueue(T0 - 30, ids["billing"])
    assert rig.poll()
    rig.sim.omni.rename_department(ids["sales"], "Sales EU")
    rig.sim.omni.remove_department(ids["billing"])  # its queued chat keeps the old id
    assert rig.polls(10) == [True] * 10  # the 10th poll re-reads the departments
    assert rig.value("department_agents", department="Sales EU", status="available") == 1
    assert rig.value("department_agents", department="Sales", status="available") is None
    assert rig.value("department_queued_chats", department=ids["billing"]) == 1


def test_selection_by_name_or_id():
    deps = [Department("d1", "Sales"), Department("d2", "Billing")]
    assert selected(deps, "all") == (deps, [])
    assert selected(deps, ("d2", "Sales", "Nope")) == ([deps[1], deps[0]], ["Nope"])
    assert selected(deps, "none") == ([], [])


def _random_inputs(seed: int, now: float):
    """Three past days and today of random sessions (some across midnight), 30 agents in
    4 departments (some in two, some in none), a schedule on one department."""
    import random
    import re
    from datetime import date, timedelta
    from zoneinfo import ZoneInfo

    from exporter.config.model import AgentFilter, Staffing, StaffingRule, Window
    from exporter.departments import DepartmentInputs
    from exporter.localtime import day_start
    from exporter.model import AgentDay, AgentLive, DayHistory, Interval, LiveStatus, Omnichannel
    from exporter.sessions import Streak
    from exporter.snapshot import SnapshotInputs

    rng = random.Random(seed)
    tz = ZoneInfo("Europe/Berlin")
    today = date(2026, 3, 4)
    deps = tuple(Department(f"d{k}", f"Dep {k}") for k in range(4))
    names = [f"agent{i:02d}" for i in range(30)]
    days = []
    for back in (3, 2, 1, 0):
        day = today - timedelta(days=back)
        lo, hi = day_start(day, tz), min(day_start(day + timedelta(days=1), tz), now)
        agents = {}
        for name in names:
            t, ivs = lo + rng.uniform(0, 3600), []
            while t < hi - 60 and len(ivs) < 8:
                end = min(hi - (1 if hi < now else 0), t + rng.uniform(300, 7200))
                ivs.append(Interval(t, end))
                t = end + rng.uniform(60, 5400)
            if ivs and rng.random() < 0.9:
                agents[name] = AgentDay(name, tuple(ivs), None)
        days.append(DayHistory(day=day, agents=agents, total=len(agents)))
    live = tuple(
        AgentLive(
            name,
            rng.choice(["online", "away", "offline"]),
            rng.random() < 0.6,
            departments=tuple(sorted({f"d{i % 4}", f"d{(i * 7) % 4}"})) if i % 9 else (),
        )
        for i, name in enumerate(names)
    )
    streaks = {a.username: Streak(now - rng.uniform(0, 4000), now) for a in live if a.available}
    rule = StaffingRule(
        frozenset(range(7)),
        __import__("datetime").time(8),
        __import__("datetime").time(20),
        3,
        "Dep 1",
    )
    windows = tuple(
        Window(n, "duration", s) for n, s in (("1h", 3600.0), ("24h", 86400.0), ("3d", 259200.0))
    ) + (Window("today", "today"), Window("yesterday", "yesterday"))
    omni = Omnichannel(deps, (), 0, ())

    def inputs(past):
        return SnapshotInputs(
            server="rc",
            tz=tz,
            days=days,
            live=LiveStatus(live, {}),
            streaks=streaks,
            windows=windows,
            agent_filter=AgentFilter(include=re.compile(".*"), exclude=None),
            staffing=None,
            include_open_sessions=True,
            departments=DepartmentInputs(
                Departments("all"),
                omni,
                (("Dep 1", Staffing("Europe/Berlin", 0, (rule,))),),
                past,
            ),
        )

    return inputs


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kept_past_part_gives_the_figures_of_a_build_from_scratch(seed):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from exporter.departments_past import DepartmentPast
    from exporter.snapshot import build_snapshot

    past = DepartmentPast()
    start = datetime(2026, 3, 4, 9, 0, tzinfo=ZoneInfo("Europe/Berlin")).timestamp()
    inputs = _random_inputs(seed, start)
    for step in range(4):  # the same past days: one block per department serves every poll
        now = start + 600 * step
        kept = build_snapshot(inputs(past), now).departments
        fresh = build_snapshot(inputs(None), now).departments
        assert kept is not None and fresh is not None
        assert [r.department for r in kept.rows] == [r.department for r in fresh.rows]
        for a, b in zip(kept.rows, fresh.rows, strict=True):
            assert a.status_counts == b.status_counts and a.chat_slots == b.chat_slots
            for (wa, ta), (wb, tb) in zip(a.team, b.team, strict=True):
                assert wa == wb
                assert (ta.active, ta.min, ta.max) == (tb.active, tb.min, tb.max), (
                    a.department,
                    wa,
                )
                assert ta.avg == pytest.approx(tb.avg, abs=1e-9)
                assert ta.unstaffed_seconds == pytest.approx(tb.unstaffed_seconds, abs=1e-6)
                if tb.understaffed_seconds is None:
                    assert ta.understaffed_seconds is None
                else:
                    assert ta.understaffed_seconds == pytest.approx(tb.understaffed_seconds)
    assert past.builds == 5  # one block per department row, built once for the four polls


def test_a_long_queue_is_paged_when_infinite_count_is_off():
    """API_Allow_Infinite_Count off: count=0 gets the default page size (50), so the queue
    is read in pages of 100 (Upper Count Limit); the total and the oldest stay exact."""
    r = Rig(
        agents=0, windows=("1h",), config_extra={"departments": "all"}, allow_infinite_count=False
    )
    try:
        _scene(r)
        for k in range(250):
            r.sim.omni.enqueue(T0 - 3000 + k, None)
        assert r.poll()
        assert r.value("queued_chats") == 250
        assert r.value("queue_oldest_created_timestamp_seconds") == T0 - 3000
        assert r.value("department_queued_chats", department=NO_DEPARTMENT) == 250
        # count=0 gets 50, the rest follows in pages of 100 from offset 50: 50 + 100 + 100.
        assert r.api("inquiries", "200") == 3
        assert r.poll(60)
        assert r.api("inquiries", "200") == 3 + 3  # pages from now on: 100 + 100 + 50
        assert r.value("queued_chats") == 250
    finally:
        r.close()


def test_a_failed_department_refresh_keeps_the_last_list(rig):
    _scene(rig)
    assert rig.poll()
    rig.sim.faults.inject("error", times=50, route="departments")  # outlasts every retry
    assert rig.polls(10) == [True] * 10  # the 10th poll refreshes and gets 500s
    assert rig.api("departments", "500") > 0
    assert rig.value("omnichannel_known", part="departments") == 1
    assert rig.value("department_agents", department="Sales", status="available") == 1


def test_open_chats_per_agent_follow_the_agent_label_mode(tmp_path):
    key = tmp_path / "label.key"
    key.write_text("k" * 40)
    r = Rig(
        agents=0,
        windows=("1h",),
        config_extra={"departments": "all"},
        agent_filter={"label": "hashed", "label_key_file": str(key)},
    )
    try:
        _scene(r)
        assert r.poll() and r.poll(60)
        page = r.page().decode()
        assert "rocketchat_omnichannel_agent_open_chats{" in page
        for name in ("alice", "bob", "carol", "dave"):
            assert name not in page
    finally:
        r.close()
