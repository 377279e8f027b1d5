"""The on-disk day store: exact round trips, and nothing untrustworthy is ever used."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import random
import re
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from exporter import daystore
from exporter.config import ConfigError, parse_config
from exporter.daystore import DayStore, check_cache_dir
from exporter.model import AgentDay, DayHistory, Interval, ParseStats
from exporter.simulator import Simulator, SimulatorConfig
from exporter.simulator import serve as serve_simulator
from tests.benchmarks import daystore as daystore_benchmark
from tests.support.faultrig import Rig, parse_page
from tests.support.procs import free_port, http_get, start_exporter, wait_for

DAY = date(2026, 3, 3)
T0 = datetime(2026, 3, 3, tzinfo=UTC).timestamp()
FETCHED = T0 + 2 * 86400.0
URL = "https://chat.example.com"
USER_ID = "uid-Q7f3LeakCheck-9c2e"
TOKEN = "tok-Z8p1LeakCheck-4b6d0a3f"


def history(agents: int = 20, seed: int = 1, day: date = DAY) -> DayHistory:
    rnd = random.Random(seed)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
    out = {}
    for i in range(agents):
        t = start + rnd.uniform(0, 3600)
        intervals = []
        for _ in range(rnd.randint(0, 10)):
            s = t + rnd.uniform(1, 1800)
            t = s + rnd.uniform(0, 3600)
            intervals.append(Interval(round(s, 3), round(t, 3)))
        name = f"agent-{i}"
        reported = None if i % 5 == 0 else float(rnd.randint(0, 30000))
        out[name] = AgentDay(name, tuple(intervals), reported)
    return DayHistory(day, out, agents + 3, ParseStats(4, 5, 6))


def store_at(root: Path, **changes: str) -> DayStore:
    args = {"server": "rc", "url": URL, "timezone": "Europe/Berlin"} | changes
    return DayStore(str(root), **args)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == "exporter.daystore" and r.levelno >= logging.WARNING
    ]


def test_round_trip_is_exact(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    original = history(200)
    # Odd but possible names: every one must come back as the same string, and a day with
    # no agent at all is a day too.
    weird = {"": (), "ünï\ncode\u202e": (Interval(T0, T0),), "lone\ud800surrogate": ()}
    for name, intervals in weird.items():
        original.agents[name] = AgentDay(name, intervals, 0.0)
    assert store.save(original, FETCHED)
    (loaded,) = store.load([DAY])
    assert loaded.history == original
    assert loaded.fetched_at == FETCHED
    assert list(loaded.history.agents) == list(original.agents)  # order kept, too
    empty = DayHistory(date(2026, 3, 2), {}, 0)
    assert store.save(empty, FETCHED)
    assert [s.history for s in store.load([date(2026, 3, 2)])] == [empty]


def test_missing_days_are_just_missing(tmp_path: Path, caplog) -> None:
    store = store_at(tmp_path)
    assert store.load([DAY]) == []
    assert store_at(tmp_path / "never-created").load([DAY]) == []
    assert warnings_of(caplog) == []


def test_no_secret_goes_into_the_file(tmp_path: Path) -> None:
    config = parse_config(
        {
            "history_cache_dir": str(tmp_path),
            "servers": [{"name": "rc", "url": URL, "user_id": USER_ID, "auth_token": TOKEN}],
        },
        environ={},
    )
    store = DayStore.for_server(config, config.servers[0])
    assert store is not None and store.save(history(), FETCHED)
    data = Path(store.path(DAY)).read_bytes()
    for secret in (USER_ID, TOKEN):
        for form in (secret, hashlib.sha256(secret.encode()).hexdigest()):
            assert form.encode() not in data
    assert URL.encode() in data  # what it is keyed by, readable


def corruptions(data: bytes) -> dict[str, bytes]:
    middle = len(data) // 2
    flipped = bytearray(data)
    flipped[middle] ^= 0x01
    header_flip = bytearray(data)
    header_flip[45] ^= 0x20  # inside the JSON header
    return {
        "empty": b"",
        "truncated": data[: len(data) - 7],
        "cut in the header": data[:50],
        "bit flip in the payload": bytes(flipped),
        "bit flip in the header": bytes(header_flip),
        "garbage": os.urandom(len(data)),
        "appended bytes": data + b"\0",
        "another file": b"servers:\n  - name: rc\n",
    }


@pytest.mark.parametrize("kind", list(corruptions(b"x" * 200)))
def test_a_damaged_file_is_ignored_with_one_warning(tmp_path: Path, caplog, kind: str) -> None:
    store = store_at(tmp_path)
    days = [date(2026, 3, d) for d in (1, 2, 3)]
    for d in days:
        store.save(history(day=d), FETCHED)
    path = Path(store.path(DAY))
    path.write_bytes(corruptions(path.read_bytes())[kind])
    other = Path(store.path(days[0]))
    other.write_bytes(other.read_bytes()[:-1])
    loaded = store.load(days)
    assert [s.history.day for s in loaded] == [days[1]]
    (warning,) = warnings_of(caplog)
    assert warning.server == "rc" and warning.ignored == "corrupt 2"
    store.load(days)  # the same files again: still only one warning for this server
    assert len(warnings_of(caplog)) == 1


def test_a_digest_clean_file_that_does_not_decode_is_not_trusted(tmp_path, caplog) -> None:
    """Written by a buggy exporter: digest right, payload wrong. Never half a day."""
    store = store_at(tmp_path)
    data = store.encode(history(), FETCHED)
    size = int.from_bytes(data[40:44], "little")
    body = data[40 : 44 + size] + b"not zlib"
    forged = daystore.MAGIC + hashlib.sha256(body).digest() + body
    Path(store.dir).mkdir(parents=True)
    Path(store.path(DAY)).write_bytes(forged)
    assert store.load([DAY]) == []
    (warning,) = warnings_of(caplog)
    assert warning.ignored == "corrupt 1" and "cannot decode" in warning.detail


@pytest.mark.parametrize(
    "writer",
    [
        {"url": "https://other.example.com"},
        {"url": URL + "/"},
        {"timezone": "UTC"},
    ],
    ids=["other server", "other url spelling", "other zone"],
)
def test_another_server_or_zone_is_foreign(tmp_path: Path, caplog, writer) -> None:
    store_at(tmp_path, **writer).save(history(), FETCHED)
    assert store_at(tmp_path).load([DAY]) == []
    (warning,) = warnings_of(caplog)
    assert warning.ignored == "foreign 1"
    assert URL not in warning.getMessage() + warning.detail  # says what differs, not the value


def test_an_oversized_file_is_not_read_whole(tmp_path: Path, caplog, monkeypatch) -> None:
    store = store_at(tmp_path)
    store.save(history(agents=50), FETCHED)
    monkeypatch.setattr(daystore, "MAX_FILE_BYTES", 1000)
    assert store.load([DAY]) == []
    (warning,) = warnings_of(caplog)
    assert warning.ignored == "corrupt 1" and "larger than" in warning.detail


def test_a_bug_while_writing_is_logged_once_not_raised(tmp_path: Path, caplog) -> None:
    store = store_at(tmp_path)
    bad = Interval("start", "end")  # type: ignore[arg-type]  # not floats: cannot encode
    broken = DayHistory(DAY, {"x": AgentDay("x", (bad,), None)}, total=1)
    assert store.save(broken, FETCHED) is False
    assert store.save(broken, FETCHED) is False
    assert len(warnings_of(caplog)) == 1
    assert not Path(store.dir).exists() or os.listdir(store.dir) == []


def test_another_format_or_exporter_version_is_foreign(tmp_path, caplog, monkeypatch) -> None:
    store = store_at(tmp_path)
    monkeypatch.setattr(daystore, "__version__", "0.0.1")
    store_at(tmp_path).save(history(day=date(2026, 3, 2)), FETCHED)
    monkeypatch.setattr(daystore, "FORMAT", 99)
    monkeypatch.setattr(daystore, "MAGIC", daystore.MAGIC[:-1] + b"\x63")
    store_at(tmp_path).save(history(), FETCHED)
    monkeypatch.undo()
    assert store.load([date(2026, 3, 2), DAY]) == []
    (warning,) = warnings_of(caplog)
    assert warning.ignored == "foreign 2"


def test_a_file_of_another_day_is_foreign(tmp_path: Path, caplog) -> None:
    store = store_at(tmp_path)
    store.save(history(day=date(2026, 3, 1)), FETCHED)
    os.replace(store.path(date(2026, 3, 1)), store.path(DAY))
    assert store.load([DAY]) == []
    assert warnings_of(caplog)[0].ignored == "foreign 1"


def test_an_unreadable_file_is_ignored(tmp_path: Path, caplog) -> None:
    store = store_at(tmp_path)
    Path(store.path(DAY)).mkdir(parents=True)  # reading it fails with EISDIR, as root too
    assert store.load([DAY]) == []
    assert warnings_of(caplog)[0].ignored == "unreadable 1"


def test_each_server_warns_once_on_its_own(tmp_path: Path, caplog) -> None:
    a, b = store_at(tmp_path, server="a"), store_at(tmp_path, server="b")
    for store in (a, b):
        Path(store.dir).mkdir()
        Path(store.path(DAY)).write_bytes(b"junk")
        store.load([DAY])
        store.load([DAY])
    assert [w.server for w in warnings_of(caplog)] == ["a", "b"]


def test_a_server_named_dot_dot_stays_inside_the_directory(tmp_path: Path) -> None:
    store = store_at(tmp_path / "cache", server="..")
    store.save(history(), FETCHED)
    assert Path(store.path(DAY)).resolve().is_relative_to((tmp_path / "cache").resolve())


def test_the_write_is_atomic(tmp_path: Path, monkeypatch) -> None:
    """A write that fails midway leaves the old file whole and no temporary file behind."""
    store = store_at(tmp_path)
    old = history(seed=1)
    store.save(old, FETCHED)

    def fail(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)
    assert store.save(history(seed=2), FETCHED) is False
    monkeypatch.undo()
    assert os.listdir(store.dir) == [f"{DAY.isoformat()}.day"]
    assert [s.history for s in store.load([DAY])] == [old]


def test_the_final_name_appears_only_by_rename(tmp_path: Path, monkeypatch) -> None:
    store = store_at(tmp_path)
    seen: list[tuple[str, str, bytes]] = []
    replace = os.replace

    def watching(src: str, dst: str) -> None:
        assert not os.path.exists(dst)  # nothing was written to the final name before
        seen.append((os.path.basename(src), os.path.dirname(src), Path(src).read_bytes()))
        replace(src, dst)

    monkeypatch.setattr(os, "replace", watching)
    store.save(history(), FETCHED)
    ((name, where, data),) = seen
    assert name.startswith(".tmp-") and where == store.dir  # same directory: same filesystem
    assert Path(store.path(DAY)).read_bytes() == data


def test_a_write_failure_warns_once_and_is_harmless(tmp_path: Path, caplog) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    store = DayStore(str(blocker), "rc", URL, "UTC")
    assert store.save(history(), FETCHED) is False
    assert store.save(history(), FETCHED) is False
    (warning,) = warnings_of(caplog)
    assert "cannot write the history cache" in warning.getMessage()


def test_prune_deletes_days_outside_the_range_and_stale_temporaries(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    days = [date(2026, 3, d) for d in (1, 2, 3)]
    for d in days:
        store.save(history(day=d), FETCHED)
    fresh_tmp = Path(store.dir, ".tmp-fresh.day")
    old_tmp = Path(store.dir, ".tmp-old.day")
    for p in (fresh_tmp, old_tmp):
        p.write_bytes(b"partial")
    os.utime(old_tmp, (0, 0))
    unrelated = Path(store.dir, "README")
    unrelated.write_text("kept")
    assert store.prune(days[1:]) == 2
    assert sorted(os.listdir(store.dir)) == sorted(
        [".tmp-fresh.day", "README", "2026-03-02.day", "2026-03-03.day"]
    )


# ---- the directory at start ------------------------------------------------------------


def config_with(cache_dir: object, tmp_path: Path):
    return parse_config(
        {
            "history_cache_dir": cache_dir,
            "servers": [{"name": "rc", "url": URL, "user_id": "u-s3cr3t", "auth_token": "t"}],
        },
        base_dir=str(tmp_path),
        environ={},
    )


def test_the_directory_is_created_at_start(tmp_path: Path) -> None:
    config = config_with("cache/exporter", tmp_path)  # relative to the config file
    assert config.history_cache_dir == str(tmp_path / "cache" / "exporter")
    check_cache_dir(config)
    assert (tmp_path / "cache" / "exporter" / "server-rc").is_dir()
    assert os.listdir(tmp_path / "cache" / "exporter" / "server-rc") == []  # probe removed


def test_off_when_unset_or_empty(tmp_path: Path) -> None:
    assert config_with("", tmp_path).history_cache_dir is None
    check_cache_dir(config_with("", tmp_path))  # nothing to check
    assert os.listdir(tmp_path) == []


def test_a_path_that_cannot_be_a_directory_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError) as info:
        check_cache_dir(config_with("file/cache", tmp_path))
    message = str(info.value)
    assert message.startswith("history_cache_dir: cannot create ")
    assert "remove the key" in message and "writable directory" in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_directory_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "ro" / "server-rc").mkdir(parents=True)
    (tmp_path / "ro" / "server-rc").chmod(0o555)
    try:
        with pytest.raises(ConfigError, match="history_cache_dir: cannot write in .*server-rc"):
            check_cache_dir(config_with("ro", tmp_path))
    finally:
        (tmp_path / "ro" / "server-rc").chmod(0o755)


# ---- through the real path: the exporter on the simulator over HTTP, restarted -----------


def test_a_restarted_poller_fetches_only_today_and_publishes_the_same(tmp_path: Path) -> None:
    """In process, on one frozen simulated instant: the numbers must be identical."""
    r = Rig(agents=30, windows=("1h", "today", "yesterday", "7d"))
    try:
        r.config = dataclasses.replace(r.config, history_cache_dir=str(tmp_path))
        r.poller.close()
        r.poller = r.new_poller()
        assert r.poll()
        assert r.sim.request_total("history") == 8  # today and the 7 days 7d reaches
        before = r.data()
        assert any(k[0] == "agent_available_seconds" and v > 0 for k, v in before.items())

        r.poller.close()  # restart: a fresh poller and publisher, the same directory
        r.publisher = type(r.publisher)(["rc"], r.config.max_staleness)
        r.poller = r.new_poller(r.publisher)
        r.sim.reset_requests()
        assert r.poll()
        assert r.sim.request_total("history") == 1  # today only
        assert r.data() == before
    finally:
        r.close()


def test_a_corrupt_cache_file_is_refetched_through_the_real_path(tmp_path: Path, caplog) -> None:
    r = Rig(agents=10, windows=("1h", "yesterday"))
    try:
        r.config = dataclasses.replace(r.config, history_cache_dir=str(tmp_path))
        r.poller.close()
        r.poller = r.new_poller()
        assert r.poll()
        before = r.data()
        *_, yesterday = sorted((tmp_path / "server-rc").glob("*.day"))
        assert yesterday.name == "2026-03-03.day"
        yesterday.write_bytes(yesterday.read_bytes()[:-100])
        r.poller.close()
        r.publisher = type(r.publisher)(["rc"], r.config.max_staleness)
        r.poller = r.new_poller(r.publisher)
        r.sim.reset_requests()
        assert r.poll()
        assert r.sim.request_total("history") == 2  # today, and yesterday again
        assert r.data() == before
        assert [w.ignored for w in warnings_of(caplog)] == ["corrupt 1"]
        # Rewritten whole by the refetch: the next restart trusts it again.
        assert DayStore.for_server(r.config, r.config.servers[0]).load([date(2026, 3, 3)])
    finally:
        r.close()


def noon_zone() -> str:
    """A fixed-offset zone where it is about noon now: no midnight during the test."""
    hours = round((12 - datetime.now(UTC).hour) % 24)
    hours = hours - 24 if hours > 12 else hours
    return f"Etc/GMT{-hours:+d}" if hours else "UTC"  # Etc/GMT signs are inverted


@pytest.mark.e2e
@pytest.mark.slow  # real processes: full suite only (docs/testing.md)
def test_a_restarted_exporter_process_asks_rocketchat_only_for_today(tmp_path: Path) -> None:
    """Two exporter processes one after the other, with the same history_cache_dir, against
    the simulator (real clock, real HTTP): the second one asks for today only."""
    zone = noon_zone()
    sim = Simulator(
        SimulatorConfig(
            agents=25, seed=5, timezone=zone, rate_limit=0, user_id=USER_ID, auth_token=TOKEN
        )
    )
    server = serve_simulator(sim, host="127.0.0.1", port=0)
    cache = tmp_path / "cache"
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""\
poll_interval: 10m
windows: [1h, 7d, today, yesterday]
history_cache_dir: cache
servers:
  - name: sim
    url: {server.url}
    user_id: {USER_ID}
    auth_token: {TOKEN}
    timezone: {zone}
"""
    )
    try:
        pages = []
        for run in ("first", "restarted"):
            sim.reset_requests()
            (tmp_path / run).mkdir()
            proc, url = start_exporter(config, tmp_path / run)
            try:
                wait_for(lambda u=url: http_get(u + "/readyz")[0] == 200, 60, f"{run} ready")
                status, page = http_get(url + "/metrics")
                assert status == 200
                pages.append(parse_page(page))
                requests = sim.request_total("history")
                print(f"{run} exporter: {requests} history requests")
            finally:
                assert proc.stop() == 0, proc.log()
            log = proc.log()
            assert USER_ID not in log and TOKEN not in log
            if run == "first":
                assert requests == 8
                assert len(list((cache / "server-sim").glob("*.day"))) == 7
            else:
                assert requests == 1
                assert "history cache files ignored" not in log
                assert re.search(r"final days read from the history cache.* days=7", log), log
        first, restarted = (
            {k: v for k, v in p.items() if ("window", "yesterday") in k[1]} for p in pages
        )
        assert first and restarted == first
        for data in (cache / "server-sim").glob("*.day"):
            assert USER_ID.encode() not in data.read_bytes()
            assert TOKEN.encode() not in data.read_bytes()
    finally:
        server.stop()


@pytest.mark.slow  # real processes: full suite only (docs/testing.md)
def test_a_cache_dir_that_cannot_be_written_exits_2_before_serving(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""\
history_cache_dir: file/cache
servers:
  - name: rc
    url: {URL}
    user_id: {USER_ID}
    auth_token: {TOKEN}
"""
    )
    port = free_port()
    args = ["--config.file", str(config), "--web.listen-address", f"127.0.0.1:{port}"]
    proc = subprocess.run(
        [sys.executable, "-m", "exporter", *args], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert "history_cache_dir: cannot create" in proc.stderr and "remove the key" in proc.stderr
    assert "listening" not in proc.stderr
    # check-config does not touch the directory: it may run on another machine.
    check = subprocess.run(
        [sys.executable, "-m", "exporter", "check-config", "--config.file", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stderr


@pytest.mark.slow  # runs the benchmark: full suite only (docs/testing.md)
def test_the_benchmark_runs_and_its_figures_are_sane(capsys) -> None:
    """tests/benchmarks/daystore.py at a small size, so that it cannot rot (no timing)."""
    assert daystore_benchmark.main(["--agents", "30", "--repeat", "1"]) == 0
    header, row = capsys.readouterr().out.splitlines()[1:3]
    assert header.split()[-2:] == ["load/fetch", "load/parse"] and len(row.split()) == 10, row
    agents, intervals, json_bytes, file_bytes = (int(v) for v in row.split()[:4])
    assert 0 < agents <= 30 and intervals > agents and 0 < file_bytes < json_bytes
