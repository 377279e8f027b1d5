"""On-disk store of final past days, so that a restart fetches only today from Rocket.Chat.

A past day's history never changes once final (exporter/daycache.py), so the history cache
writes each final day here and reads the days it wants back at start. One file per server
and day, `<history_cache_dir>/server-<name>/<YYYY-MM-DD>.day`.

A file is trusted only for exactly what wrote it: its header names the format, the exporter
version (another version may parse Rocket.Chat's answers differently), the server's URL and
configured time zone (another Rocket.Chat or zone has other days) and the day, and a SHA-256
over header and payload catches truncation and bit rot. A file that is corrupt, truncated,
foreign or unreadable is ignored (its day is fetched again) with one warning per server: it
is never trusted and never a reason to stop polling.

Never stored: the user id, the token, or anything derived from them. Stored: what Rocket.Chat
answered for the day (usernames, session start and end times, its reported seconds, its
`total`) and the parser's counters.

Written atomically: a temporary file in the same directory, flushed and fsynced, then
`os.replace`d onto the final name, so a reader sees the old file or the new one, never half.

Layout (integers little-endian):

    MAGIC (8 bytes) | SHA-256 of everything after it (32) | header length (u32) | header (JSON)
    | zlib(payload)

The payload holds columns, not records, so it encodes and decodes at C speed: per agent the
interval count (u32), the reported seconds (f64, NaN for none) and the username's length in
bytes (u32); the usernames (UTF-8, concatenated); every interval's start and end (f64). The
f64 columns are byte-shuffled (all first bytes, then all second bytes, ...) before zlib: the
high bytes of timestamps on one day are nearly all equal and compress to almost nothing.
Times are kept exactly (8-byte floats): numbers after a restart are the same to the last bit.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import math
import os
import re
import struct
import sys
import tempfile
import time
import zlib
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date

from exporter import __version__
from exporter.config.errors import ConfigError
from exporter.config.model import Config, ServerConfig
from exporter.model import AgentDay, DayHistory, Interval, ParseStats

log = logging.getLogger("exporter.daystore")

FORMAT = 1
MAGIC = b"RCOEDAY\x01"
SUFFIX = ".day"
KEY = "history_cache_dir"
_DIGEST = 32
_PREFIX = len(MAGIC) + _DIGEST
_TMP_PREFIX = ".tmp-"
_STALE_TMP_SECONDS = 600.0  # a temporary file this old was left by a crash mid-write
# Far above any real day (about 0.1 KB per agent and day, zlib'd), so that a stray huge file
# in the directory cannot take the memory.
MAX_FILE_BYTES = 128 << 20
MAX_PAYLOAD_BYTES = 1 << 30
_DAY_FILE = re.compile(r"(\d{4}-\d{2}-\d{2})\.day")
_HINT = (
    "point history_cache_dir at a writable directory (in Kubernetes the emptyDir mounted at "
    "/var/cache/rocketchat-omnichannel-exporter), or remove the key to run without the cache"
)


@dataclass(frozen=True, slots=True)
class StoredDay:
    history: DayHistory
    fetched_at: float  # as the history cache was told (Rocket.Chat's clock)


class Unusable(Exception):
    """A file that must not be trusted; `kind` is corrupt, foreign or unreadable."""

    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind = kind


class DayStore:
    """The final days of one server on disk. One per server (its poller's history cache)."""

    def __init__(self, root: str, server: str, url: str, timezone: str):
        self.server = server
        # Prefixed: a server may be named "." or "..", which must not climb out of root.
        self.dir = os.path.join(root, f"server-{server}")
        self._ident = {"format": FORMAT, "exporter": __version__, "url": url, "timezone": timezone}
        self._warned_read = False
        self._warned_write = False

    @classmethod
    def for_server(cls, config: Config, server: ServerConfig) -> DayStore | None:
        if not config.history_cache_dir:
            return None
        return cls(config.history_cache_dir, server.name, server.url, server.timezone)

    def path(self, day: date) -> str:
        return os.path.join(self.dir, day.isoformat() + SUFFIX)

    # ---- reading ------------------------------------------------------------------------

    def load(self, days: Iterable[date]) -> list[StoredDay]:
        """The stored days among `days` that can be trusted; warns once about the others."""
        found: list[StoredDay] = []
        ignored: Counter[str] = Counter()
        detail = ""
        for day in days:
            try:
                with open(self.path(day), "rb") as f:
                    data = f.read(MAX_FILE_BYTES + 1)
            except FileNotFoundError:
                continue
            except OSError as exc:
                ignored["unreadable"] += 1
                detail = exc.strerror or type(exc).__name__
                continue
            try:
                found.append(self.decode(data, day))
            except Unusable as exc:
                ignored[exc.kind] += 1
                detail = str(exc)
        if ignored:
            self._warn_ignored(ignored, detail)
        if found:
            log.info(
                "final days read from the history cache: not fetched again",
                extra={"server": self.server, "dir": self.dir, "days": len(found)},
            )
        return found

    def decode(self, data: bytes, day: date) -> StoredDay:
        """The day in `data`, or Unusable: never half a day, never another server's."""
        if len(data) > MAX_FILE_BYTES:
            raise Unusable("corrupt", f"larger than {MAX_FILE_BYTES >> 20} MiB")
        if len(data) < _PREFIX + 4 or not data.startswith(MAGIC):
            if data[: len(MAGIC) - 1] == MAGIC[:-1] and len(data) >= len(MAGIC):
                raise Unusable("foreign", f"format {data[len(MAGIC) - 1]}, not {FORMAT}")
            raise Unusable("corrupt", "not a history cache file, or truncated")
        body = memoryview(data)[_PREFIX:]
        if hashlib.sha256(body).digest() != data[len(MAGIC) : _PREFIX]:
            raise Unusable("corrupt", "checksum mismatch (truncated or damaged)")
        try:
            (size,) = struct.unpack_from("<I", body)
            header = json.loads(bytes(body[4 : 4 + size]))
            ident = {k: header.get(k) for k in self._ident}
            if ident != self._ident or header.get("day") != day.isoformat():
                raise Unusable("foreign", self._difference(ident, header.get("day"), day))
            with _no_gc():
                history = _decode_payload(day, header, body[4 + size :])
            return StoredDay(history, float(header["fetched_at"]))
        except Unusable:
            raise
        except Exception as exc:  # a digest-clean file we cannot read: a bug, never trusted
            raise Unusable("corrupt", f"cannot decode: {type(exc).__name__}") from None

    def _difference(self, got: dict[str, object], got_day: object, day: date) -> str:
        """Which part of the key differs; values shown for format and version only."""
        for key in ("format", "exporter"):
            if got[key] != self._ident[key]:
                return f"written by {key} {got[key]!r}, this is {self._ident[key]!r}"
        for key in ("url", "timezone"):
            if got[key] != self._ident[key]:
                return f"written for another {key}"
        return f"holds {got_day!r}, not {day.isoformat()}"

    def _warn_ignored(self, ignored: Counter[str], detail: str) -> None:
        if self._warned_read:
            return
        self._warned_read = True
        log.warning(
            "history cache files ignored, their days are fetched from Rocket.Chat again",
            extra={
                "server": self.server,
                "dir": self.dir,
                "ignored": ", ".join(f"{k} {n}" for k, n in sorted(ignored.items())),
                "detail": detail,
            },
        )

    # ---- writing ------------------------------------------------------------------------

    def encode(self, history: DayHistory, fetched_at: float) -> bytes:
        header, payload = _encode_payload(history)
        header |= self._ident | {"day": history.day.isoformat(), "fetched_at": fetched_at}
        head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
        body = struct.pack("<I", len(head)) + head + zlib.compress(payload, 6)
        return MAGIC + hashlib.sha256(body).digest() + body

    def save(self, history: DayHistory, fetched_at: float) -> bool:
        """Write one final day atomically. A failure is logged once and otherwise harmless."""
        tmp = None
        try:
            data = self.encode(history, fetched_at)
            os.makedirs(self.dir, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=SUFFIX, dir=self.dir)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path(history.day))
            return True
        except Exception as exc:  # disk full, read-only, a bug: the poll goes on regardless
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            if not self._warned_write:
                self._warned_write = True
                why = exc.strerror if isinstance(exc, OSError) else None
                log.warning(
                    "cannot write the history cache; going on without it (a restart fetches "
                    "these days again)",
                    extra={"server": self.server, "dir": self.dir, "err": why or repr(exc)},
                )
            return False

    def prune(self, keep: Iterable[date]) -> int:
        """Delete the files of days not in `keep`, and temporary files left by a crash."""
        keep_names = {d.isoformat() + SUFFIX for d in keep}
        removed = 0
        try:
            entries = list(os.scandir(self.dir))
        except OSError:
            return 0
        now = time.time()
        for entry in entries:
            stale = _DAY_FILE.fullmatch(entry.name) and entry.name not in keep_names
            if entry.name.startswith(_TMP_PREFIX):
                with contextlib.suppress(OSError):
                    stale = now - entry.stat().st_mtime > _STALE_TMP_SECONDS
            if stale:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed += 1
        return removed


# ---- the payload ---------------------------------------------------------------------------


def _encode_payload(history: DayHistory) -> tuple[dict[str, object], bytes]:
    agents = list(history.agents.values())
    counts = array("I", (len(a.intervals) for a in agents))
    # NaN stands for "not reported": the parser keeps only finite values.
    reported = array("d", (_or_nan(a.reported_seconds) for a in agents))
    # surrogatepass: whatever string the parser kept comes back as the same string.
    names = [a.username.encode("utf-8", "surrogatepass") for a in agents]
    lengths = array("I", map(len, names))
    bounds = array("d")
    for a in agents:
        for i in a.intervals:
            bounds.append(i.start)
            bounds.append(i.end)
    s = history.stats
    header: dict[str, object] = {
        "agents": len(agents),
        "intervals": len(bounds) // 2,
        "names_bytes": sum(lengths),
        "total": history.total,
        "stats": [s.skipped_entries, s.skipped_agents, s.merged_entries],
    }
    parts = (_le(counts), _shuffle(_le(reported), 8), _le(lengths), b"".join(names))
    return header, b"".join(parts) + _shuffle(_le(bounds), 8)


def _or_nan(seconds: float | None) -> float:
    return math.nan if seconds is None else seconds


def _decode_payload(day: date, header: dict, packed: memoryview) -> DayHistory:
    n, m, names_bytes = int(header["agents"]), int(header["intervals"]), int(header["names_bytes"])
    size = 16 * n + names_bytes + 16 * m
    if not 0 <= size <= MAX_PAYLOAD_BYTES or min(n, m, names_bytes) < 0:
        raise ValueError("implausible sizes")
    # Bounded: never more than the header announces (no decompression bomb).
    payload = zlib.decompressobj().decompress(packed, size + 1)
    if len(payload) != size:
        raise ValueError("payload size does not match its header")
    view = memoryview(payload)
    pos = 0

    def take(size: int) -> memoryview:
        nonlocal pos
        if pos + size > len(view):
            raise ValueError("payload too short")
        chunk = view[pos : pos + size]
        pos += size
        return chunk

    counts = _from_le("I", take(4 * n))
    reported = _from_le("d", _unshuffle(take(8 * n), 8))
    lengths = _from_le("I", take(4 * n))
    names = bytes(take(names_bytes))
    bounds = _from_le("d", _unshuffle(take(16 * m), 8))
    if pos != len(view) or sum(counts) != m or sum(lengths) != names_bytes:
        raise ValueError("payload does not match its header")
    agents: dict[str, AgentDay] = {}
    name_pos = interval_pos = 0
    for count, seconds, length in zip(counts, reported, lengths, strict=True):
        username = names[name_pos : name_pos + length].decode("utf-8", "surrogatepass")
        name_pos += length
        flat = bounds[interval_pos : interval_pos + 2 * count]
        interval_pos += 2 * count
        intervals = tuple(map(Interval, flat[0::2], flat[1::2]))
        agents[username] = AgentDay(username, intervals, None if math.isnan(seconds) else seconds)
    if len(agents) != n:
        raise ValueError("duplicate username")
    stats = ParseStats(*(int(v) for v in header["stats"]))
    return DayHistory(day=day, agents=agents, total=int(header["total"]), stats=stats)


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """Tens of thousands of new objects without a reference cycle: the collector's passes
    over everything alive, which their allocation triggers, would find nothing to free."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _le(values: array) -> bytes:
    if sys.byteorder == "big":
        values = array(values.typecode, values)
        values.byteswap()
    return values.tobytes()


def _from_le(typecode: str, data: bytes | memoryview) -> array:
    values = array(typecode)
    values.frombytes(data)
    if sys.byteorder == "big":
        values.byteswap()
    return values


def _shuffle(data: bytes, width: int) -> bytes:
    return b"".join(data[i::width] for i in range(width))


def _unshuffle(data: bytes | memoryview, width: int) -> bytes:
    data = bytes(data)
    n = len(data) // width
    out = bytearray(len(data))
    for i in range(width):
        out[i::width] = data[i * n : (i + 1) * n]
    return bytes(out)


# ---- at start -------------------------------------------------------------------------------


def check_cache_dir(config: Config) -> None:
    """Create the cache directories and prove they are writable, or raise ConfigError.

    At start of serve/once, not in check-config: that may run on another machine than the
    exporter (a laptop, CI), where the directory of the deployment does not exist.
    """
    if not config.history_cache_dir:
        return
    for server in config.servers:
        store = DayStore.for_server(config, server)
        assert store is not None
        doing = "create"
        try:
            os.makedirs(store.dir, exist_ok=True)
            doing = "write in"
            fd, probe = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=store.dir)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            raise ConfigError(f"{KEY}: cannot {doing} {store.dir}: {why} ({_HINT})") from None
