"""Service level (issue 13): the histogram math, the rooms parser, and the real path.

The real path: an in-process exporter (poller + publisher, tests/support/faultrig.Rig) polls
the simulator over HTTP on 127.0.0.1; rooms are scripted with known waits, and the exported
buckets are compared with hand-computed ones.
"""

from __future__ import annotations

import logging
import subprocess

import pytest

from exporter.config import ConfigError, parse_config
from exporter.rocketchat.roomparse import parse_rooms_page
from exporter.servicelevel import Buckets, ClosedRoom, Histogram, Tally, record, seed
from exporter.simulator.rooms import SimRoom
from tests.support.faultrig import T0, Rig
from tests.support.procs import require_binary

PRIVATE = (
    b"Jane Visitor",
    b"secret-room-name",
    b"private-message-text",
    b"visitor-token",
    b"example.invalid",
    b"card number",
    b"guest-r",
)


# ---------------------------------------------------------------- pure math


def room(rid: str, closed: float, wait: float | None = 5.0, **kw) -> ClosedRoom:
    fields = {
        "department": None,
        "created_at": 0.0,
        "served": wait is not None,
        "served_at": wait,
        "first_response": None,
        "duration": None,
    }
    fields.update(kw)
    return ClosedRoom(rid, closed, **fields)  # type: ignore[arg-type]


def test_histogram_buckets_are_cumulative_and_le_is_inclusive():
    h = Histogram.empty((10.0, 30.0, 60.0)).observe([5, 10, 30.5, 60, 61, 1000])
    assert h.buckets == (2, 2, 4, 6)  # <=10: 5, 10; <=30: same; <=60: + 30.5, 60; +Inf: all
    assert (h.count, h.sum) == (6, 1166.5)
    assert Histogram.empty((1.0,)).observe([]) == Histogram.empty((1.0,))


def test_seed_counts_nothing_and_record_counts_each_room_once():
    tally = seed(Tally(Buckets(), False, overlap=600.0), [room("old", 100.0)], now=200.0)
    assert tally.figures[""].closed == 0
    assert tally.since(0.0) == 200.0 - 600.0
    tally, new = record(tally, [room("old", 100.0), room("a", 300.0), room("a", 300.0)])
    assert new == 1 and tally.figures[""].closed == 1
    tally, new = record(tally, [room("a", 300.0), room("b", 400.0, wait=None)])
    assert new == 1
    fig = tally.figures[""]
    assert (fig.closed, fig.abandoned, fig.wait.count) == (2, 1, 1)
    # Ids older than the overlap before the newest are forgotten: no query reaches them.
    tally, _ = record(tally, [room("c", 2000.0)])
    assert set(tally.seen) == {"c"}


def test_per_department_keys_and_served_without_timestamp():
    tally = seed(Tally(Buckets(), True, 60.0), [], 0.0, departments=["d1"])
    assert set(tally.figures) == {"d1"}  # zero series for rate() from the start
    tally, _ = record(tally, [room("a", 1.0, department="d2"), room("b", 2.0, served_at=None)])
    assert set(tally.figures) == {"d1", "d2", "(none)"}
    none = tally.figures["(none)"]
    assert (none.closed, none.abandoned, none.wait.count) == (1, 0, 0)  # served, no servedBy.ts


def test_parser_keeps_only_what_it_needs():
    doc = SimRoom("r1", 1_000_000, "d1", 1_045_000, 20.5, 1_600_000).document()
    page = parse_rooms_page({"rooms": [doc, {"_id": "open-one"}, 7], "total": 3, "success": True})
    assert (page.received, page.skipped, page.total) == (3, 2, 3)
    (r,) = page.rooms
    assert r == ClosedRoom("r1", 1600.0, "d1", 1000.0, True, 1045.0, 20.5, 600.0)
    assert r.queue_wait == 45.0
    text = repr(page).encode()
    assert not [p for p in PRIVATE if p in text]


# ---------------------------------------------------------------- config


def test_config_off_by_default_and_errors_name_the_field():
    base = {"servers": [{"name": "a", "url": "http://127.0.0.1:1", "user_id": "u",
                         "auth_token": "t", "timezone": "UTC"}]}  # fmt: skip
    assert not parse_config(base).service_level.enabled
    assert parse_config({**base, "service_level": None}).service_level.enabled
    with pytest.raises(ConfigError) as info:
        parse_config(
            {**base, "service_level": {"wait_buckets": [60, 30], "target_ratio": 1.5, "x": 1}}
        )
    message = str(info.value)
    assert "service_level.wait_buckets: must be strictly increasing" in message
    assert "service_level.target_ratio: must be between 0 and 1" in message
    assert "service_level.x: unknown key" in message
    with pytest.raises(ConfigError, match=r"service_level.target_seconds: 45 s is not one of"):
        parse_config({**base, "service_level": {"target_seconds": 45}})


# ---------------------------------------------------------------- the real path


def rig(**service_level) -> Rig:
    return Rig(agents=2, config_extra={"service_level": service_level})


def hist(r: Rig, name: str, **labels: str) -> dict[str, float]:
    out = {}
    for (metric, lbls), value in r.samples().items():
        d = dict(lbls)
        if metric == f"{name}_bucket" and all(d.get(k) == v for k, v in labels.items()):
            out[d["le"]] = value
    out["sum"] = r.value(f"{name}_sum", **labels) or 0.0
    out["count"] = r.value(f"{name}_count", **labels) or 0.0
    return out


def script(r: Rig) -> None:
    rooms = r.sim.rooms
    rooms.add(T0 - 900, wait=20, first_response=5, duration=800)  # closed before we started
    rooms.add(T0 + 10, wait=5, first_response=8, duration=300)  # closes T0+310
    rooms.add(T0 + 20, wait=45, first_response=30, duration=900)  # closes T0+920
    rooms.add(T0 + 30, wait=None, duration=200)  # abandoned, closes T0+230
    rooms.add(T0 + 40, wait=100, first_response=200, duration=4000)  # closes T0+4040


def test_exported_histograms_match_hand_computed_buckets_once_per_room():
    r = rig(wait_buckets=[10, 30, 60, 120], response_buckets=[10, 30, 60], overlap="10m")
    try:
        script(r)
        assert r.poll()  # seeds: the room closed before the start is not counted
        assert r.value("chats_closed_total") == 0
        assert hist(r, "chat_queue_wait_seconds")["+Inf"] == 0
        assert r.poll(1000)  # T0+1000: three rooms closed
        wait = {"10": 1, "30": 1, "60": 2, "120": 2, "+Inf": 2, "sum": 50, "count": 2}
        assert hist(r, "chat_queue_wait_seconds") == wait
        response = {"10": 1, "30": 2, "60": 2, "+Inf": 2, "sum": 38, "count": 2}
        assert hist(r, "chat_first_response_seconds") == response
        duration = hist(r, "chat_duration_seconds")
        assert (duration["300"], duration["600"], duration["1800"]) == (2, 2, 3)
        assert (duration["sum"], duration["count"]) == (1400, 3)
        assert (r.value("chats_closed_total"), r.value("chats_abandoned_total")) == (3, 1)
        # The next query overlaps (from 10 min before the newest closedAt): nothing twice.
        assert r.poll(60)
        assert hist(r, "chat_queue_wait_seconds") == wait
        assert r.poll(3100)  # T0+4160: the long chat closed
        assert hist(r, "chat_queue_wait_seconds")["120"] == 3
        assert r.value("chats_closed_total") == 4
        assert r.value("service_level_known") == 1
        assert r.value("service_level_target_ratio") == 0.8
        assert r.value("service_level_target_seconds") == 60
        # One rooms request per poll, count=0, from the newest closedAt minus the overlap.
        assert r.requests is not None
        asked = [t for _, route, _, t in r.requests.entries if route.startswith("rooms")]
        assert len(asked) == 4 and all("count=0" in t and "closedAt=" in t for t in asked)
    finally:
        r.close()


def test_per_department_labels_use_names_when_departments_are_on():
    r = Rig(
        agents=2,
        config_extra={"departments": "all", "service_level": {"per_department": True}},
    )
    try:
        sales = r.sim.omni.add_department("Sales")
        assert r.poll()
        assert r.value("chats_closed_total", department="Sales") == 0  # zero from the start
        r.sim.rooms.add(T0 + 5, department=sales, wait=70, first_response=3, duration=100)
        r.sim.rooms.add(T0 + 6, wait=None, duration=50)
        assert r.poll(300)
        assert r.value("chats_closed_total", department="Sales") == 1
        assert r.value("chat_queue_wait_seconds_bucket", department="Sales", le="60") == 0
        assert r.value("chat_queue_wait_seconds_bucket", department="Sales", le="120") == 1
        assert r.value("chats_abandoned_total", department="(none)") == 1
    finally:
        r.close()


def test_refused_route_is_unknown_counters_hold_and_catch_up(caplog):
    r = rig()
    try:
        assert r.poll()
        r.sim.forbid("rooms")
        r.sim.rooms.add(T0 + 10, wait=15, first_response=4, duration=100)
        with caplog.at_level(logging.WARNING):
            assert r.poll(200) and r.up() == 1  # availability goes on
        assert r.value("service_level_known") == 0
        assert r.value("chats_closed_total") == 0
        assert any("view-livechat-rooms" in rec.getMessage() + str(getattr(rec, "err", ""))
                   for rec in caplog.records)  # fmt: skip
        r.sim.forbid("rooms", False)
        assert r.poll(60)
        assert (r.value("service_level_known"), r.value("chats_closed_total")) == (1, 1)
    finally:
        r.close()


def test_restart_starts_from_zero_without_counting_the_past_again():
    r = rig()
    try:
        assert r.poll()
        r.sim.rooms.add(T0 + 10, wait=15, duration=100)
        assert r.poll(200)
        assert r.value("chats_closed_total") == 1
        r.poller.close()
        r.poller = r.new_poller()  # a restart: a counter reset, as rate() expects
        assert r.poll(60)
        assert r.value("chats_closed_total") == 0
        r.sim.rooms.add(T0 + 300, wait=15, duration=100)
        assert r.poll(200)
        assert r.value("chats_closed_total") == 1
    finally:
        r.close()


def test_page_is_valid_text_format_and_private_room_data_never_shows(caplog):
    promtool = require_binary("promtool")
    r = rig(per_department=True)
    try:
        with caplog.at_level(logging.DEBUG):
            assert r.poll()
            for i in range(5):
                r.sim.rooms.add(T0 + i, department=f"d{i % 2}", wait=i * 20.0, duration=60 + i)
            assert r.poll(300)
        page = r.page()
        check = subprocess.run([promtool, "check", "metrics"], input=page, capture_output=True)
        assert check.returncode == 0, check.stderr
        assert b"# TYPE rocketchat_omnichannel_chat_queue_wait_seconds histogram" in page
        logs = "\n".join(f"{rec.getMessage()} {rec.__dict__}" for rec in caplog.records).encode()
        assert not [p for p in PRIVATE if p in page or p in logs]
    finally:
        r.close()


def test_off_asks_no_rooms_and_exports_no_family():
    r = Rig(agents=2)
    try:
        r.sim.rooms.add(T0 - 10, wait=1, duration=5)
        assert r.poll() and r.poll(60)
        assert r.requests is not None
        assert not [e for e in r.requests.entries if e[1].startswith("rooms")]
        assert b"chat_queue_wait" not in r.page() and b"service_level" not in r.page()
    finally:
        r.close()


# ---------------------------------------------------------------- real process, real Prometheus


@pytest.mark.e2e
@pytest.mark.slow
def test_real_exporter_process_and_prometheus_show_hand_computed_buckets(tmp_path):
    """The simulator (on the real clock, scripted here) -> the exporter process -> Prometheus."""
    import time

    from exporter.simulator import Simulator, SimulatorConfig, serve
    from tests.support.procs import Prometheus, http_get, start_exporter, wait_for

    sim = Simulator(SimulatorConfig(agents=2, rate_limit=0, user_id="u-sl", auth_token="t-sl"))
    server = serve(sim, host="127.0.0.1", port=0)
    (tmp_path / "token").write_text("t-sl\n")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"""\
poll_interval: 1s
service_level:
  wait_buckets: [10, 60, 300]
servers:
  - name: sim
    url: {server.url}
    user_id: u-sl
    auth_token_file: token
    timezone: UTC
"""
    )
    procs = []
    try:
        exporter, url = start_exporter(cfg, tmp_path)
        procs.append(exporter)
        metric = "rocketchat_omnichannel_chats_closed_total"

        def page() -> str:
            return http_get(url + "/metrics")[1].decode()

        wait_for(lambda: f'{metric}{{server="sim"}} 0' in page(), 30, "seeded at 0")
        prom = Prometheus(tmp_path, [url.removeprefix("http://")])
        procs.append(prom)
        now = time.time()
        # Closed just now (after the seeding poll): waits 4, 30, 200 s and one abandoned.
        for wait, duration in ((4, 50), (30, 100), (200, 400), (None, 90)):
            sim.rooms.add(now - duration, wait=wait, first_response=3, duration=duration - 0.5)
        want = {"10": 1, "60": 2, "300": 3, "+Inf": 3}
        name = "rocketchat_omnichannel_chat_queue_wait_seconds_bucket"

        def buckets() -> dict[str, float]:
            got = {r["metric"]["le"]: float(r["value"][1]) for r in prom.query(name)}
            return got if got == want else {}

        assert wait_for(buckets, 60, "hand-computed buckets in prometheus") == want
        assert prom.query(f"{metric} == 4") and prom.query(
            "rocketchat_omnichannel_chats_abandoned_total == 1"
        )
        assert prom.query("rocketchat_omnichannel_chat_queue_wait_seconds_sum == 234")
        body = page().encode() + exporter.log().encode()
        assert not [p for p in PRIVATE if p in body]
    finally:
        for p in reversed(procs):
            p.stop()
        server.stop()
