"""Exposition: text format that promtool accepts, escaping, staleness, render-once."""

from __future__ import annotations

import gzip
import subprocess

from exporter.availability import AgentWindow, TeamWindow
from exporter.departments import DepartmentRow, DepartmentsSnapshot
from exporter.exposition import METRIC_NAMES, ServerHealth, ServerView
from exporter.model import ParseStats
from exporter.page import render
from exporter.publisher import Publisher
from exporter.servicelevel import (
    Buckets,
    ClosedRoom,
    ServiceLevelSnapshot,
    Tally,
    record,
    seed,
    snapshot_of,
)
from exporter.snapshot import AgentRow, ServerSnapshot
from tests.support.procs import require_binary

NASTY = 'a"b\\c\nd <script>é'


def departments(department: str = "Sales", agent: str = "alice") -> DepartmentsSnapshot:
    row = DepartmentRow(
        department=department,
        status_counts=(("available", 1), ("away", 0), ("busy", 0), ("offline", 1)),
        team=(("1h", TeamWindow(2, 0.0, 1.0, 0.5, 1800.0, 3600.0)),),
        required_agents=2,
        queued=3,
        oldest_queued=900.0,
        open_chats=1,
        chat_slots=2,
    )
    return DepartmentsSnapshot(
        rows=(row,),
        known=(("departments", True), ("membership", True), ("queue", True), ("load", False)),
        queued=4,
        oldest_queued=880.0,
        agent_open_chats=((agent, 1),),
        queue_wait_warning=300.0,
    )


def snapshot(server="main", taken_at=1000.0, agent="alice", department="Sales") -> ServerSnapshot:
    return ServerSnapshot(
        server=server,
        taken_at=taken_at,
        agents=(
            AgentRow(
                agent=agent,
                windows=(
                    ("1h", AgentWindow(1800.0, 0.5, 2)),
                    ("today", AgentWindow(3600, 0.25, 3)),
                ),
                reported=(("today", 3700.0),),
                last_available=990.5,
                available=True,
                open_session_seconds=120.0,
            ),
        ),
        team=(("1h", TeamWindow(3, 0.0, 2.0, 1.25, 60.0, 300.0)),),
        status_counts=(("available", 1), ("away", 0), ("busy", 0), ("offline", 2)),
        required_agents=2,
        missing_agents=0,
        anomalies=ParseStats(1, 0, 2),
        window_status=(("1h", True, 0), ("today", True, 4)),
        departments=departments(department, agent),
        service_level=service_level(department),
    )


def service_level(department: str = "Sales") -> ServiceLevelSnapshot:
    tally = seed(Tally(Buckets(), per_department=True, overlap=600.0), [], 0.0, ["d1"])
    room = ClosedRoom("r1", 10.0, "d1", 0.0, True, 45.0, 20.0, 600.0)
    tally, _ = record(tally, [room])
    return snapshot_of(tally, True, {"d1": department}, 0.8, 60.0)


def health(server="main", up=True) -> ServerHealth:
    return ServerHealth(
        server=server,
        up=up,
        last_success=1000.0,
        last_poll=1000.0,
        poll_duration=0.25,
        requests=(("history", "200", 9), ("agents", "429", 1)),
        poll_errors=(("rate_limited", 1),),
        fill_days=3.5,
        fill_wanted=8,
        fill_eta=42.0,
    )


def test_render_has_every_metric_with_values():
    text = render([ServerView(health(), snapshot())]).decode()
    assert (
        'rocketchat_omnichannel_agent_available_seconds{server="main",agent="alice",window="1h"} 1800'
        in text
    )
    assert (
        'rocketchat_omnichannel_agent_available_ratio{server="main",agent="alice",window="today"} 0.25'
        in text
    )
    assert (
        'rocketchat_omnichannel_agent_reported_available_seconds{server="main",agent="alice",window="today"} 3700'
        in text
    )
    assert 'rocketchat_omnichannel_available_agents_avg{server="main",window="1h"} 1.25' in text
    assert (
        'rocketchat_omnichannel_api_requests_total{server="main",endpoint="agents",code="429"} 1'
        in text
    )
    assert 'rocketchat_omnichannel_window_agents_missing{server="main",window="today"} 4' in text
    assert 'rocketchat_omnichannel_fill_progress_ratio{server="main"} 0.4375' in text
    assert 'rocketchat_omnichannel_fill_eta_seconds{server="main"} 42' in text
    assert 'rocketchat_omnichannel_server_info{server="main"} 1' in text
    assert (
        'rocketchat_omnichannel_department_occupancy_ratio{server="main",department="Sales"} 0.5'
        in text
    )
    assert 'rocketchat_omnichannel_omnichannel_known{server="main",part="load"} 0' in text
    assert (
        'rocketchat_omnichannel_department_unstaffed_seconds{server="main",department="Sales",'
        'window="1h"} 1800' in text
    )
    for name in METRIC_NAMES:
        assert f"# TYPE {name} " in text, name
    assert "background polling" in text  # HELP says where values come from


def test_promtool_accepts_the_exposition_with_hostile_names():
    promtool = require_binary("promtool")
    page = render(
        [
            ServerView(health(), snapshot(agent=NASTY, department=NASTY)),
            ServerView(health("b"), snapshot("b")),
        ]
    )
    result = subprocess.run(
        [promtool, "check", "metrics"], input=page, capture_output=True, timeout=30
    )
    assert result.returncode == 0, result.stderr.decode() + result.stdout.decode()
    assert result.stdout.decode().strip() == "" and result.stderr.decode().strip() == ""
    assert b'agent="a\\"b\\\\c\\nd <script>\xc3\xa9"' in page


def test_stale_snapshot_is_dropped_but_health_remains():
    pub = Publisher(["main"], max_staleness=300)
    pub.update(health(), snapshot(taken_at=1000.0), now=1000.0)
    assert b"agent_available_seconds" in pub.page(1200.0)
    failed = ServerHealth(server="main", up=False, last_success=1000.0, last_poll=1400.0)
    pub.update(failed, None, now=1400.0)  # a failed poll keeps the old snapshot...
    page = pub.page(1400.0).decode()
    assert "agent_available_seconds" not in page  # ...until it is older than max_staleness
    assert 'rocketchat_omnichannel_up{server="main"} 0' in page
    assert "last_success_timestamp_seconds" in page


def test_failed_poll_keeps_previous_snapshot():
    pub = Publisher(["main"], max_staleness=300)
    pub.update(health(), snapshot(taken_at=1000.0), now=1000.0)
    pub.update(ServerHealth(server="main", up=False, last_poll=1060.0), None, now=1060.0)
    page = pub.page(1060.0).decode()
    assert 'agent="alice",window="1h"} 1800' in page


def test_page_is_rendered_once_per_update_and_gzipped(monkeypatch):
    import exporter.publisher as publisher

    calls = []
    real = publisher.render_server
    monkeypatch.setattr(
        publisher, "render_server", lambda view, *a: calls.append(1) or real(view, *a)
    )
    pub = Publisher(["main"], max_staleness=300)
    pub.update(health(), snapshot(), now=1000.0)
    for _ in range(5):
        plain = pub.page(1001.0)
    assert len(calls) == 1
    assert gzip.decompress(pub.page(1001.0, gzipped=True)) == plain


def test_ready_only_after_every_server_succeeded():
    pub = Publisher(["a", "b"], max_staleness=300)
    assert not pub.ready(1000.0)
    pub.update(health("a"), snapshot("a"), now=1000.0)
    assert not pub.ready(1000.0)
    pub.update(health("b"), snapshot("b"), now=1000.0)
    assert pub.ready(1000.0)


def test_up_is_absent_until_a_first_poll_finished():
    pub = Publisher(["main"], max_staleness=300)
    assert b"rocketchat_omnichannel_up{" not in pub.page(1000.0)
    pub.update(ServerHealth(server="main", up=False, last_poll=1000.0), None, now=1000.0)
    assert b'rocketchat_omnichannel_up{server="main"} 0' in pub.page(1000.0)


def test_one_servers_update_renders_only_that_server(monkeypatch):
    import exporter.publisher as publisher

    pub = Publisher(["a", "b"], max_staleness=300)
    pub.update(health("a"), snapshot("a"), now=1000.0)
    pub.update(health("b"), snapshot("b"), now=1000.0)
    rendered = []
    real = publisher.render_server
    monkeypatch.setattr(
        publisher,
        "render_server",
        lambda view, *a: rendered.append(view.health.server) or real(view, *a),
    )
    pub.update(health("a"), snapshot("a", taken_at=1060.0), now=1060.0)
    page = pub.page(1060.0)
    assert rendered == ["a"]
    assert page == render(
        [ServerView(health("a"), snapshot("a", 1060.0)), ServerView(health("b"), snapshot("b"))]
    )
    assert gzip.decompress(pub.page(1060.0, gzipped=True)) == page


def test_joined_gzip_is_one_valid_member_for_any_split():
    """The gzip page is joined from per-family deflate segments: it must be one valid stream."""
    import zlib

    views = [ServerView(health(s), snapshot(s, agent=f"agent-{s}")) for s in "abc"]
    pub = Publisher(["a", "b", "c"], max_staleness=300)
    for v in views:
        pub.update(v.health, v.snapshot, now=1000.0)
    packed = pub.page(1000.0, gzipped=True)
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)  # exactly one gzip member, CRC and size checked
    assert d.decompress(packed) == render(views) and d.eof and d.unused_data == b""


def test_a_snapshot_that_cannot_render_is_not_kept(monkeypatch):
    import exporter.publisher as publisher

    pub = Publisher(["a"], max_staleness=300)
    pub.update(health("a"), snapshot("a"), now=1000.0)
    good = pub.page(1000.0)
    real = publisher.render_server

    def broken(view, *a):
        if view.snapshot is not None and view.snapshot.taken_at == 1060.0:
            raise RuntimeError("render bug")
        return real(view, *a)

    monkeypatch.setattr(publisher, "render_server", broken)
    try:
        pub.update(health("a"), snapshot("a", taken_at=1060.0), now=1060.0)
    except RuntimeError:
        pass
    else:
        raise AssertionError("the render error should reach the poller, which counts it")
    down = ServerHealth(server="a", up=False, last_success=1000.0, last_poll=1060.0)
    pub.update(down, None, now=1060.0)  # what the poller does next: the old snapshot renders
    page = pub.page(1060.0)

    def data(text: bytes) -> list[bytes]:
        return [
            line for line in text.splitlines() if line.startswith(b"rocketchat_omnichannel_agent")
        ]

    assert data(page) == data(good) and data(good)
    assert b'rocketchat_omnichannel_up{server="a"} 0' in page


def test_watchdog_shows_a_stalled_or_stopped_poller_as_down():
    pub = Publisher(["a", "b"], max_staleness=300)
    pub.update(health("a"), snapshot("a"), now=1000.0)
    pub.update(health("b"), snapshot("b"), now=1000.0)
    pub.beat("a", deadline=1100.0)
    assert pub.ready(1090.0)
    assert b'rocketchat_omnichannel_up{server="a"} 1' in pub.page(1090.0)
    page = pub.page(1101.0)  # deadline missed: no poll, yet the page changes at scrape time
    assert b'rocketchat_omnichannel_up{server="a"} 0' in page
    assert b'rocketchat_omnichannel_up{server="b"} 1' in page
    assert not pub.ready(1101.0)
    assert pub.waiting_for(1101.0) == [
        "a: poller stalled: 1 s past its deadline, nothing heard from it"
    ]
    pub.beat("a", deadline=1300.0)  # heard of again
    assert b'rocketchat_omnichannel_up{server="a"} 1' in pub.page(1102.0)
    pub.stopped("b", "RuntimeError (a bug: see the log)")
    assert b'rocketchat_omnichannel_up{server="b"} 0' in pub.page(1103.0)
    assert pub.views(1103.0)[1].health.stalled.startswith("poller stopped: RuntimeError")


def test_a_first_poll_that_froze_shows_up_zero():
    pub = Publisher(["a"], max_staleness=300)
    pub.beat("a", deadline=1100.0)
    assert b"rocketchat_omnichannel_up{" not in pub.page(1050.0)  # a long fill: no verdict yet
    assert b'rocketchat_omnichannel_up{server="a"} 0' in pub.page(1200.0)
    assert pub.waiting_for(1050.0) == ["a: first poll running"]  # nothing known of a fill yet


def test_a_render_reusing_the_previous_page_is_byte_identical():
    """Per-agent text is reused from the previous render where the values did not change;
    changed, added and removed agents and windows must come out exactly as from scratch."""
    from dataclasses import replace

    from exporter.page import render_server

    first = ServerView(health(), snapshot())
    page1 = render_server(first)
    row = first.snapshot.agents[0]
    moved = replace(row, windows=(("1h", AgentWindow(1860.0, 0.5166666666666667, 2)),))
    added = replace(row, agent="bob", windows=(("today", AgentWindow(60.0, 0.01, 1)),))
    hour, day = AgentWindow(1860.0, 0.5, 2), AgentWindow(60.0, 0.01, 1)
    two = replace(row, windows=(("1h", hour), ("today", day)))
    # One line of two moves (today's ratio, every poll); then a window gives way to another.
    one_moved = replace(row, windows=(("1h", hour), ("today", AgentWindow(60.0, 0.02, 1))))
    renamed = replace(row, windows=(("1h", hour), ("week", AgentWindow(60.0, 0.02, 1))))
    sequence = [(row,), (moved,), (moved, added), (added,), (), (two,), (one_moved,), (renamed,)]
    for agents in sequence:
        view = ServerView(health(), replace(first.snapshot, agents=agents))
        reused = render_server(view, page1)
        assert reused.chunks == render_server(view).chunks
        # A new health on the same snapshot: only the health families are rendered again.
        later = ServerView(replace(health(), up=False, last_error="x", fill_eta=9.0), view.snapshot)
        health_only = render_server(later, reused, same_snapshot=True)
        assert health_only.chunks == render_server(later).chunks
        assert health_only.deflated == render_server(later).deflated
        page1 = reused
