"""The on-disk day store: exact round trips, and nothing untrustworthy is ever used."""

from __future__ import annotations

import hashlib
import logging
import os
import random
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from exporter import daystore
from exporter.config import ConfigError, parse_config
from exporter.daystore import DayStore, check_cache_dir
from exporter.model import AgentDay, DayHistory, Interval, ParseStats

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
