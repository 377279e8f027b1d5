"""The simulated database: agents (`users`) and their activity (`livechat_agent_activity`).

Times are integer milliseconds (Rocket.Chat stores `Date`s, millisecond precision); days are
`date.toordinal()` of the server-local calendar day.

The ground truth is a list of *sessions* per agent: absolute `[start, end)` spans during which
the agent was available for service. What Rocket.Chat *records* is derived from them exactly as
`LivechatAgentActivityMonitor` does:

- a day's document appears when a session starts that day (or when the midnight job reopens a
  session at 00:00:00.000 local); until something closes it holds neither `availableTime` nor
  `serviceHistory`;
- a session that ends normally adds `{startedAt, stoppedAt}` and `trunc((stop - start) / 1 s)`
  seconds to the document of the day it started (moment's `diff(..., 'seconds')` truncates);
- a session still open at local midnight is closed by the cron at `23:59:59.000` of its day
  (recorded at midnight) and reopened at `00:00:00.000` of the next day;
- the double-stop defect adds a second entry with the same `startedAt` and a later `stoppedAt`,
  and credits the time again.

Generated data (seeded, lazily built per shift-day / per day, compact arrays) and scripted
sessions (tests) go through the same derivation.
"""

from __future__ import annotations

import random
from array import array
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from math import log
from zoneinfo import ZoneInfo

INF = 1 << 62  # "never" in ms

PRESENCE_CODES = ("online", "away", "busy")

_ID_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz"
_FIRST = [
    "alice",
    "amir",
    "ana",
    "aziz",
    "bea",
    "bruno",
    "carla",
    "chen",
    "dana",
    "diego",
    "elif",
    "emma",
    "farah",
    "felix",
    "gina",
    "hana",
    "ivan",
    "jonas",
    "julia",
    "kai",
    "kenji",
    "lara",
    "liam",
    "lucia",
    "maja",
    "marco",
    "mei",
    "nadia",
    "nils",
    "omar",
    "paula",
    "priya",
    "quinn",
    "rafael",
    "rosa",
    "sami",
    "sofia",
    "tariq",
    "uma",
    "vera",
    "wei",
    "yara",
    "yusuf",
    "zoe",
]
_LAST = [
    "adams",
    "bauer",
    "costa",
    "diaz",
    "evans",
    "fischer",
    "garcia",
    "haddad",
    "ito",
    "jensen",
    "kaur",
    "kowalski",
    "lopez",
    "moreau",
    "nakamura",
    "novak",
    "okafor",
    "olsen",
    "patel",
    "petrov",
    "quiroga",
    "rossi",
    "santos",
    "schmidt",
    "silva",
    "tanaka",
    "turner",
    "ueda",
    "vargas",
    "weber",
    "xu",
    "yilmaz",
    "young",
    "zhang",
]


@dataclass(frozen=True, slots=True)
class Agent:
    """A user with the livechat-agent role."""

    id: str
    username: str
    name: str
    email: str = ""


def random_id(rng: random.Random) -> str:
    """A Meteor-style 17-character id."""
    return "".join(rng.choice(_ID_ALPHABET) for _ in range(17))


def trunc_seconds(ms: int) -> int:
    """moment(stop).diff(start, 'seconds'): truncation toward zero."""
    return ms // 1000 if ms >= 0 else -((-ms) // 1000)


class Zone:
    """Server-local calendar arithmetic in milliseconds, cached per day."""

    def __init__(self, name: str):
        self.name = name
        self.tz = ZoneInfo(name)
        self._midnight: dict[int, int] = {}
        self._last_second: dict[int, int] = {}

    def day_of(self, ms: int) -> int:
        return datetime.fromtimestamp(ms / 1000, self.tz).date().toordinal()

    def midnight(self, day: int) -> int:
        """new Date(y, m, d): local 00:00:00.000 of `day`."""
        v = self._midnight.get(day)
        if v is None:
            d = date.fromordinal(day)
            v = round(datetime(d.year, d.month, d.day, tzinfo=self.tz).timestamp() * 1000)
            self._midnight[day] = v
        return v

    def last_second(self, day: int) -> int:
        """new Date(y, m, d, 23, 59, 59): what the midnight job writes as stoppedAt."""
        v = self._last_second.get(day)
        if v is None:
            d = date.fromordinal(day)
            dt = datetime(d.year, d.month, d.day, 23, 59, 59, tzinfo=self.tz)
            v = round(dt.timestamp() * 1000)
            self._last_second[day] = v
        return v


@dataclass(frozen=True, slots=True)
class Session:
    """A span of availability. `end=None`: still open, forever (a stuck session).

    `presence` is the agent's presence while available (online|away|busy);
    `double_stop_ms` > 0 makes the stop be processed twice, that many ms apart.
    """

    start: int
    end: int | None
    presence: int = 0
    double_stop_ms: int = 0


def day_entries(s: Session, day: int, zone: Zone) -> tuple[int, list[tuple[int, int, int]]] | None:
    """What session `s` leaves in `day`'s document.

    Returns (document created at, [(startedAt, stoppedAt, recorded at), ...]) or None when the
    session does not touch that day.
    """
    m0 = zone.midnight(day)
    m1 = zone.midnight(day + 1)
    end = INF if s.end is None else s.end
    if end <= m0 or s.start >= m1:
        return None
    started = s.start if s.start >= m0 else m0  # the midnight job reopened it at 00:00:00.000
    if end < m1:
        entries = [(started, end, end)]
        if s.double_stop_ms > 0:
            second = end + s.double_stop_ms
            entries.append((started, second, second))
        return started, entries
    # still open at midnight: the cron closes it at 23:59:59 of this day, at midnight
    return started, [(started, zone.last_second(day), m1)]


@dataclass(frozen=True, slots=True)
class Profile:
    """Per-agent habits for the generator."""

    shift_start_min: float  # minutes after local midnight
    shift_len_min: float
    leaves_available: bool  # keeps statusLivechat=available while offline


class ShiftTable:
    """Generated sessions of every agent for shifts that begin on one server-local day.

    Flat arrays: agent i's sessions are data[4*offsets[i]: 4*offsets[i+1]] as
    (start, end, presence, double_stop_ms) quadruples, sorted by start.
    """

    __slots__ = ("offsets", "data", "events")

    def __init__(self, offsets: array, data: array):
        self.offsets = offsets
        self.data = data
        ev = array("q")
        for k in range(0, len(data), 4):
            ev.append(data[k])
            ev.append(data[k + 1])
        self.events = array("q", sorted(ev))  # when someone's live state changes

    def sessions(self, i: int) -> list[Session]:
        d = self.data
        return [
            Session(d[k], d[k + 1], d[k + 2], d[k + 3])
            for k in range(4 * self.offsets[i], 4 * self.offsets[i + 1], 4)
        ]


class DayTable:
    """Every agent's document for one server-local day, as it grows over time.

    created[i]: when agent i's document appeared (INF: never). Entries of agent i are
    data[3*offsets[i]: 3*offsets[i+1]] as (startedAt, stoppedAt, recordedAt) triples,
    in the order they were recorded. `events` (sorted) are the instants the day's answer changes.
    """

    __slots__ = ("created", "offsets", "data", "events")

    def __init__(self, created: array, offsets: array, data: array):
        self.created = created
        self.offsets = offsets
        self.data = data
        ev = [c for c in created if c < INF]
        ev.extend(data[k] for k in range(2, len(data), 3))
        ev.sort()
        self.events = array("q", ev)

    def visible(self, i: int, now: int) -> tuple[int, int]:
        """(first entry index, number of entries recorded by `now`) of agent i."""
        lo = self.offsets[i]
        hi = self.offsets[i + 1]
        d = self.data
        k = lo
        while k < hi and d[3 * k + 2] <= now:
            k += 1
        return lo, k - lo

    def seconds(self, i: int, now: int) -> int:
        lo, n = self.visible(i, now)
        d = self.data
        return sum(trunc_seconds(d[3 * k + 1] - d[3 * k]) for k in range(lo, lo + n))

    def entries(self, i: int, now: int) -> list[tuple[int, int]]:
        lo, n = self.visible(i, now)
        d = self.data
        return [(d[3 * k], d[3 * k + 1]) for k in range(lo, lo + n)]


def state_key(events: Sequence[int], now: int) -> int:
    return bisect_right(events, now)


class Generator:
    """Deterministic (seeded) agents and shifts."""

    def __init__(
        self,
        seed: int,
        intervals_per_day: int,
        off_day_rate: float,
        double_stop_rate: float,
    ):
        self.seed = seed
        self.intervals = intervals_per_day
        self.off_day_rate = off_day_rate
        self.double_stop_rate = double_stop_rate

    def agents(self, n: int) -> tuple[list[Agent], list[Profile]]:
        rng = random.Random(f"agents:{self.seed}")
        agents: list[Agent] = []
        profiles: list[Profile] = []
        seen: dict[str, int] = {}
        for _ in range(n):
            first = rng.choice(_FIRST)
            last = rng.choice(_LAST)
            base = f"{first}.{last}"
            k = seen.get(base, 0) + 1
            seen[base] = k
            username = base if k == 1 else f"{base}{k}"
            name = f"{first.capitalize()} {last.capitalize()}"
            agents.append(Agent(random_id(rng), username, name, f"{username}@example.com"))
            kind = rng.random()
            if kind < 0.6:
                start_min = rng.uniform(7 * 60, 10 * 60)
            elif kind < 0.85:
                start_min = rng.uniform(13 * 60, 16 * 60)
            else:  # night shift: crosses local midnight
                start_min = rng.uniform(20 * 60, 23 * 60)
            profiles.append(Profile(start_min, rng.uniform(6 * 60, 10 * 60), rng.random() < 0.3))
        return agents, profiles

    def shift(self, idx: int, profile: Profile, day: int, zone: Zone) -> list[tuple[int, ...]]:
        """Sessions (start, end, presence, double_stop_ms) of agent `idx`'s shift on `day`."""
        rng = random.Random((self.seed * 1_000_003 + idx) * 1_000_033 + day)
        rnd = rng.random  # uniform/expovariate inlined: this runs 20,000 times per day
        if rnd() < self.off_day_rate:
            return []
        start = zone.midnight(day) + (profile.shift_start_min - 30 + 60 * rnd()) * 60_000
        length = (profile.shift_len_min - 45 + 90 * rnd()) * 60_000
        n = self.intervals
        if n >= 4:
            n = max(1, n + rng.randint(-2, 2))
        gaps = [20_000 + 880_000 * rnd() for _ in range(n - 1)]
        if n >= 4 and gaps:
            gaps[rng.randrange(len(gaps))] = 1_800_000 + 1_800_000 * rnd()  # lunch
        total_gap = sum(gaps)
        if total_gap > length / 2:  # keep at least half of the shift available
            gaps = [g * length / 2 / total_gap for g in gaps]
            total_gap = length / 2
        weights = [0.02 - log(1.0 - rnd()) for _ in range(n)]  # exponential: some very short
        scale = (length - total_gap) / sum(weights)
        double_rate = self.double_stop_rate
        out: list[tuple[int, ...]] = []
        t = start
        for j in range(n):
            s = round(t)
            e = max(s + 1, round(t + weights[j] * scale))
            r = rnd()
            presence = 0 if r < 0.8 else (1 if r < 0.92 else 2)
            dstop = 50 + int(2950 * rnd()) if double_rate and rnd() < double_rate else 0
            out.append((s, e, presence, dstop))
            t = e + (gaps[j] if j < n - 1 else 0)
        return out

    def shift_table(self, profiles: list[Profile], day: int, zone: Zone) -> ShiftTable:
        offsets = array("q", [0])
        data = array("q")
        for i, p in enumerate(profiles):
            sessions = self.shift(i, p, day, zone)
            for sess in sessions:
                data.extend(sess)
            offsets.append(offsets[-1] + len(sessions))
        return ShiftTable(offsets, data)


def build_day_table(
    day: int,
    zone: Zone,
    gen_index: list[int | None],
    shift_tables: list[ShiftTable],
    scripted: list[list[Session] | None],
    open_documents: bool = True,
) -> DayTable:
    """Derive `day`'s documents from the shifts that can touch it and the scripted sessions.

    Agent i (directory order) has generated sessions at row gen_index[i] of the shift tables
    (None: not a generated agent) and scripted sessions scripted[i]. With open_documents
    False a document only appears with its first closed entry (not Rocket.Chat's behaviour:
    for consumers that want to test without empty documents)."""
    created = array("q")
    offsets = array("q", [0])
    data = array("q")
    m0 = zone.midnight(day)
    m1 = zone.midnight(day + 1)
    for i, g in enumerate(gen_index):
        first = INF
        entries: list[tuple[int, int, int]] = []
        for tab in shift_tables if g is not None else ():
            assert g is not None  # for mypy: the loop is empty otherwise
            d = tab.data
            for k in range(4 * tab.offsets[g], 4 * tab.offsets[g + 1], 4):
                s, e = d[k], d[k + 1]
                if e <= m0 or s >= m1:
                    continue
                if s >= m0 and e < m1 and not d[k + 3]:  # the common case, inlined
                    first = min(first, s)
                    entries.append((s, e, e))
                    continue
                got = day_entries(Session(s, e, d[k + 2], d[k + 3]), day, zone)
                if got is not None:
                    first = min(first, got[0])
                    entries.extend(got[1])
        extra = scripted[i]
        if extra:
            for sess in extra:
                got = day_entries(sess, day, zone)
                if got is not None:
                    first = min(first, got[0])
                    entries.extend(got[1])
        if len(entries) > 1:
            entries.sort(key=lambda e: (e[2], e[0]))
        if not open_documents:
            first = entries[0][2] if entries else INF
        created.append(first)
        for e in entries:
            data.extend(e)
        offsets.append(offsets[-1] + len(entries))
    return DayTable(created, offsets, data)


__all__ = [
    "INF",
    "PRESENCE_CODES",
    "Agent",
    "DayTable",
    "Generator",
    "Profile",
    "Session",
    "ShiftTable",
    "Zone",
    "build_day_table",
    "day_entries",
    "random_id",
    "state_key",
    "trunc_seconds",
]
