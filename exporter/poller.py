"""Background polling: the only place that owns time and threads.

One thread per Rocket.Chat server. Each poll fetches the days the history cache asks for and
the live status, builds a complete snapshot and hands it to the publisher. Any failure keeps
the previous snapshot: a partial poll never replaces good data with half of it.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from zoneinfo import ZoneInfo

from exporter.config.model import Config, ServerConfig
from exporter.daycache import HistoryCache
from exporter.departments import DepartmentInputs
from exporter.departments_past import DepartmentPast
from exporter.exposition import ServerHealth
from exporter.localtime import local_date
from exporter.model import LiveStatus, Omnichannel
from exporter.pastdays import PastDays
from exporter.publisher import Publisher
from exporter.rocketchat import REASONS, Client, RocketChatError, Stopped
from exporter.rocketchat.client import RocketChatClient
from exporter.rocketchat.omnichannel import OmnichannelFeed
from exporter.rocketchat.transport import SKEW_WARN_SECONDS
from exporter.servicelevel_feed import RoomsFeed
from exporter.sessions import Streak, update_streaks
from exporter.snapshot import ServerSnapshot, SnapshotInputs, build_snapshot
from exporter.zonecheck import format_offset, zone_mismatch

log = logging.getLogger("exporter.poller")

ClientFactory = Callable[..., Client]


class ServerPoller:
    def __init__(
        self,
        server: ServerConfig,
        config: Config,
        publisher: Publisher,
        *,
        stop: threading.Event,
        clock: Callable[[], float] = time.time,
        client_factory: ClientFactory = RocketChatClient,
    ):
        self.server = server
        self.config = config
        self.publisher = publisher
        self.stop = stop
        self.clock = clock
        self.tz = ZoneInfo(server.timezone)
        self.cache = HistoryCache.for_server(server, config)
        self.streaks: dict[str, Streak] = {}
        self.past = PastDays()  # what the snapshot takes from past days, kept between polls
        self._requests: Counter[tuple[str, str]] = Counter()
        # Every reason starts at 0 so that rate() sees the first failure.
        self._errors: Counter[str] = Counter(dict.fromkeys((*REASONS, "internal"), 0))
        self._health = ServerHealth(
            server=server.name,
            poll_interval=config.poll_interval,
            poll_errors=tuple(sorted(self._errors.items())),  # 0 from the start, for rate()
        )
        self._stretched = False
        self._zone_warning = ""
        self._watched = False  # set by run(): only a real poller thread is watched
        self._fill: _Fill | None = None  # while the history cache fills (first poll, gaps)
        self._early_live: tuple[LiveStatus, float] | None = None  # the early publish's
        self._health = replace(self._health, fill_wanted=config.history_days)
        self.client = client_factory(
            server,
            on_request=self._count_request,
            on_wait=self._waiting,
            on_progress=self._page_progress,
            stop=stop,
            clock=clock,
        )
        self.feed = OmnichannelFeed.for_config(self.client, config.departments, server)
        self.department_past = DepartmentPast()  # the departments' past part, between polls
        self.rooms = RoomsFeed.for_config(self.client, config.service_level)  # None: off

    def _count_request(self, endpoint: str, code: str) -> None:
        self._requests[(endpoint, code)] += 1
        self._beat()

    # ---- the watchdog's heartbeat -----------------------------------------------------------

    def _grace(self) -> float:
        """Longest silence between two signs of life in normal work: a request with its
        retries and backoff, or building and publishing a large snapshot."""
        return 4 * self.server.timeout + 60.0

    def _beat(self, busy_for: float = 0.0) -> None:
        """Tell the watchdog we are alive and will be heard of within `busy_for` + grace."""
        if self._watched:
            self.publisher.beat(self.server.name, self.clock() + busy_for + self._grace())

    def _waiting(self, seconds: float) -> None:
        """The client is about to wait this long (rate limit, backoff): not a stall."""
        self._beat(seconds)

    # ---- one poll ---------------------------------------------------------------------------

    def poll_once(self) -> ServerSnapshot:
        """Fetch what is needed and build a snapshot; raises on any failure."""
        started = self.clock()
        self._early_live = None
        fetched = self._fetch_days(started, publish_early=self._health.last_success is None)
        live, live_at = self._live_status()
        omni = self.feed.fetch() if self.feed is not None else None  # never raises RocketChatError
        if self.rooms is not None:  # never raises RocketChatError either
            self.rooms.fetch(self.clock(), omni.departments if omni is not None else None)
        now = self.clock()
        if local_date(now, self.tz) != local_date(started, self.tz):
            # Midnight passed during this poll: the new day (and the one that just ended)
            # must be in the snapshot too, or it would be a partial picture at `now`.
            fetched += self._fetch_days(now)
        self.cache.prune(now)
        self._check_zone(fetched, now)
        available = (
            None if live.agents is None else [a.username for a in live.agents if a.available]
        )
        streaks = update_streaks(self.streaks, available, live_at)
        builds = self.past.builds
        snapshot = build_snapshot(self._inputs(live, streaks, now, omni), now, self.past)
        if self.past.builds != builds and self.past.intervals >= EXEMPT_FROM_GC_INTERVALS:
            _exempt_long_lived()
        self.streaks = streaks
        if self.rooms is not None:
            snapshot = replace(snapshot, service_level=self.rooms.snapshot())
        return snapshot

    def _live_status(self) -> tuple[LiveStatus, float]:
        """The live status and when it was seen: the early publish's, if this poll made one
        less than a poll interval ago (with paging that is 50 requests at 5,000 agents)."""
        early = self._early_live
        if early is not None and self.clock() - early[1] < self.config.poll_interval:
            return early
        return self.client.fetch_live_status(), self.clock()

    def _inputs(
        self,
        live: LiveStatus,
        streaks: dict[str, Streak],
        now: float,
        omni: Omnichannel | None = None,
    ) -> SnapshotInputs:
        cached = {d.day for d in self.cache.days(now)}
        return SnapshotInputs(
            server=self.server.name,
            tz=self.tz,
            days=self.cache.days(now),
            live=live,
            streaks=streaks,
            windows=self.config.windows,
            agent_filter=self.config.agents,
            staffing=self.server.staffing,
            include_open_sessions=self.config.windows_include_open_sessions,
            missing_days=frozenset(d for d in self.cache.wanted_range(now) if d not in cached),
            departments=None
            if omni is None
            else DepartmentInputs(
                self.config.departments, omni, self.server.department_staffing, self.department_past
            ),
        )

    def _fetch_days(self, now: float, publish_early: bool = False) -> list[date]:
        days = self.cache.days_to_fetch(now)
        if len(days) > FILL_AFTER_DAYS:
            self._fill = _Fill(len(days), self.clock(), len(self.cache.wanted_range(now)))
        try:
            for i, day in enumerate(days):
                history = self.client.fetch_history_day(day)
                # Each day is complete in itself, so caching it even if a later request of
                # this poll fails saves Rocket.Chat a request; only the snapshot is
                # all-or-nothing.
                self.cache.store(history, self._server_now())
                fill = self._fill
                if fill is not None:
                    fill.days_done = i + 1
                    fill.day_part = 0.0
                    self._report_fill(force=True)
                    # Worth a live-status request only when the rest will take a while.
                    slow = (fill.eta or 0.0) > EARLY_PUBLISH_AFTER_SECONDS
                    if publish_early and slow and not fill.early and i + 1 < len(days):
                        fill.early = True
                        self._publish_early(self.clock())
        finally:
            self._fill = None
        return days

    # ---- the first fill: progress, and today published before the past days arrive ----------

    def _page_progress(self, endpoint: str, received: int, total: int | None) -> None:
        if self._fill is not None and endpoint == "history" and total:
            self._fill.day_part = min(1.0, received / total)
            self._report_fill()

    def _report_fill(self, force: bool = False) -> None:
        """Publish the fill's progress (at most once a second) and log every 10 %."""
        fill = self._fill
        assert fill is not None
        now_at = self.clock()  # the poller's clock: a fake one in tests sees the pacing
        if not force and now_at - fill.published < 1.0:
            return
        fill.published = now_at
        done = fill.days_done + fill.day_part
        eta = (now_at - fill.started) * (fill.days - done) / done if done else None
        fill.eta = eta
        self._health = replace(
            self._health,
            fill_days=fill.wanted - fill.days + done,
            fill_wanted=fill.wanted,
            fill_eta=eta,
            requests=self._request_counts(),
            poll_errors=tuple(sorted(self._errors.items())),
        )
        self.publisher.update(self._health, None, self.clock())
        elapsed = now_at - fill.started
        if done >= fill.days:
            log.info(
                "history cache filled",
                extra={"server": self.server.name, "days": fill.days, "seconds": round(elapsed, 1)},
            )
            return
        step = int(10 * done / fill.days)
        # A fill of a few seconds needs no running commentary, only its last line.
        if step > fill.logged and max(elapsed, eta or 0.0) >= EARLY_PUBLISH_AFTER_SECONDS:
            fill.logged = step
            log.info(
                "filling the history cache",
                extra={
                    "server": self.server.name,
                    "percent": round(100 * done / fill.days),
                    "days": f"{done:.1f}/{fill.days}",
                    "eta_seconds": None if eta is None else round(eta),
                },
            )

    def _publish_early(self, now: float) -> None:
        """Today's figures and the live status, before the past days arrive.

        Only before any poll succeeded (nothing good to replace): the snapshot leaves out the
        windows that need days still missing, and says so (`window_complete` 0). If the rest
        of the fill then fails, this partial picture stays until max_staleness.
        """
        live = self.client.fetch_live_status()
        self._early_live = (live, now)
        available = (
            None if live.agents is None else [a.username for a in live.agents if a.available]
        )
        streaks = update_streaks(self.streaks, available, now)
        snapshot = build_snapshot(self._inputs(live, streaks, now), now)
        self.publisher.update(self._health, snapshot, now)
        log.info(
            "published today's figures while the history cache fills",
            extra={"server": self.server.name},
        )

    def _request_counts(self) -> tuple[tuple[str, str, int], ...]:
        return tuple((e, c, n) for (e, c), n in sorted(self._requests.items()))

    def _server_now(self) -> float:
        """Rocket.Chat's time now, as far as finishing days goes.

        The cache treats a day as final once fetched after its end by Rocket.Chat's clock;
        when ours runs ahead, the day would be closed early and its last sessions lost. Only
        a clock ahead is corrected: behind, a day is merely kept open a little longer.
        """
        skew = self.client.clock_skew
        return self.clock() - max(0.0, skew)

    def _check_zone(self, fetched: list[date], now: float) -> None:
        """Warn once if Rocket.Chat's midnight split shows it runs in another time zone."""
        if self._zone_warning or not fetched:
            return
        days = self.cache.days(now)
        for before, after in zip(days, days[1:], strict=False):
            if before.day not in fetched and after.day not in fetched:
                continue
            offset = zone_mismatch(before, after, self.tz)
            if offset is None:
                continue
            self._zone_warning = (
                f"Rocket.Chat's days end at midnight {format_offset(offset)}, not in the "
                f"configured timezone {self.server.timezone}: set servers[].timezone to the "
                "Rocket.Chat server process's zone (today/yesterday windows and day "
                "boundaries are off until then)"
            )
            log.warning(
                self._zone_warning,
                extra={"server": self.server.name, "day": after.day.isoformat()},
            )
            return

    def run_poll(self) -> bool:
        """One poll with bookkeeping: health, counters, logs, publish. Never raises."""
        started = time.monotonic()
        snapshot = None
        error = ""
        try:
            snapshot = self.poll_once()
        except Stopped:
            return False  # shutting down: not a failure of Rocket.Chat
        except RocketChatError as exc:
            # The client has already logged this failure class once, with Rocket.Chat's text.
            self._errors[exc.reason] += 1
            error = str(exc)
        except Exception as exc:  # a bug must not kill the thread; keep serving old data
            error = self._internal_error(exc, "poll")
        self._beat()
        duration = time.monotonic() - started
        now = self.clock()
        previous = self._health
        self._health = self._new_health(previous, snapshot is not None, error, duration, now)
        try:
            self.publisher.update(self._health, snapshot, now)
        except Exception as exc:  # rendering this server's page failed: keep the last page
            error = self._internal_error(exc, "publish")
            snapshot = None
            self._health = self._new_health(previous, False, error, duration, now)
            with contextlib.suppress(Exception):  # already counted and logged once
                self.publisher.update(self._health, None, now)
        return snapshot is not None

    def _new_health(
        self, previous: ServerHealth, ok: bool, error: str, duration: float, now: float
    ) -> ServerHealth:
        return ServerHealth(
            server=self.server.name,
            up=ok,
            last_success=now if ok else previous.last_success,
            last_poll=now,
            poll_duration=duration,
            poll_interval=self._effective_interval(duration),
            requests=self._request_counts(),
            poll_errors=tuple(sorted(self._errors.items())),
            last_error=error,
            warnings=self._warnings(),
            fill_days=len(self.cache.days(now)),
            fill_wanted=len(self.cache.wanted_range(now)),
        )

    def _internal_error(self, exc: Exception, stage: str) -> str:
        """A bug, not Rocket.Chat's fault: count it, log it once with its traceback."""
        self._errors["internal"] += 1
        log.error(
            f"{stage} failed unexpectedly (a bug: please report it with this traceback)",
            exc_info=exc,
            extra={"server": self.server.name},
        )
        return f"internal error in {stage}: {type(exc).__name__}"

    def _warnings(self) -> tuple[str, ...]:
        out = [self._zone_warning] if self._zone_warning else []
        skew = self.client.clock_skew
        if abs(skew) >= SKEW_WARN_SECONDS:
            ahead = "ahead of" if skew > 0 else "behind"
            out.append(f"the exporter's clock is {abs(skew):.0f} s {ahead} Rocket.Chat's")
        return tuple(out)

    def _effective_interval(self, duration: float) -> float:
        configured = self.config.poll_interval
        stretched = max(duration, self.client.min_poll_interval) > configured
        if stretched != self._stretched:
            self._stretched = stretched
            if stretched:
                log.warning(
                    "poll_interval too short for Rocket.Chat's rate limit or poll duration;"
                    " polling as fast as allowed",
                    extra={
                        "server": self.server.name,
                        "poll_seconds": round(duration, 1),
                        "poll_interval": configured,
                    },
                )
            else:
                log.info("polls fit poll_interval again", extra={"server": self.server.name})
        return max(configured, duration, self.client.min_poll_interval)

    # ---- the loop ---------------------------------------------------------------------------

    def log_server_info(self) -> None:
        """Log Rocket.Chat's version once at start: it decides how pagination behaves."""
        try:
            info = self.client.fetch_info()
        except RocketChatError:
            return  # the first poll reports the problem
        except Exception as exc:  # a bug here must not keep the poller from starting
            self._internal_error(exc, "server info")
            return
        log.info(
            "polling Rocket.Chat",
            extra={
                "server": self.server.name,
                "rocketchat_version": info.get("version", "?"),
                "timezone": self.server.timezone,
            },
        )

    def run(self) -> None:
        self._watched = True
        self._beat()
        # The error counters (all 0) and the fill's size are on /metrics from the start.
        self.publisher.update(self._health, None, self.clock())
        self.log_server_info()
        while not self.stop.is_set():
            started = time.monotonic()
            self._beat()
            self.run_poll()
            # The effective interval: stretched when Rocket.Chat's rate limit cannot cover the
            # configured one (the client paces requests; this avoids queueing behind it).
            wait = self._health.poll_interval - (time.monotonic() - started)
            self._beat(max(wait, 0.0))
            if wait > 0:
                self.stop.wait(wait)

    def close(self) -> None:
        self.client.close()


# A poll that needs more days than today and yesterday is filling the cache: it reports its
# progress and, on a first poll, publishes today before the rest arrives.
FILL_AFTER_DAYS = 2


@dataclass
class _Fill:
    days: int  # days this fill fetches
    started: float  # the poller's clock
    wanted: int  # days the cache holds when full
    days_done: int = 0
    day_part: float = 0.0  # share of the current day's pages fetched
    published: float = -math.inf  # when progress was last published (poller's clock)
    logged: int = 0  # tenths of the fill logged so far
    eta: float | None = None  # seconds left, as last estimated
    early: bool = False  # today's figures were published ahead of the rest


# A first fill expected to take longer than this publishes today's figures first.
EARLY_PUBLISH_AFTER_SECONDS = 2.0


# Below this many intervals in the past days a full garbage collection is cheap anyway.
EXEMPT_FROM_GC_INTERVALS = 100_000


def _exempt_long_lived() -> None:
    """Take what is alive now out of the cyclic garbage collector's scans.

    Called when large past days were just (re)built: about twice a day. They hold hundreds
    of thousands to millions of objects (every interval of a week) for a whole day, and
    every full collection would walk all of them, for nothing: they hold no reference
    cycles, so reference counting frees them when the cache drops them. Garbage already
    waiting in cycles is collected first, so nothing collectable is exempted. At 5,000
    agents this halves the collector's time per poll (95 -> 43 ms).
    """
    gc.collect()
    gc.freeze()


# The cyclic collector's thresholds for a polling process (CPython's are 700, 10, 10). A poll
# allocates millions of short-lived, acyclic objects (parsed intervals, figures, lines) that
# reference counting frees; with the default gen-0 threshold they trigger thousands of young
# collections and several full ones per poll, whose cost grows with everything alive.
GC_THRESHOLDS = (50_000, 20, 20)
SWITCH_INTERVAL_SECONDS = 0.001


def tune_gc() -> None:
    """Fewer, larger collections: the same garbage is collected, far less often scanned.

    What is alive before the first poll (modules, config) lives as long as the process:
    frozen, full collections no longer walk it (29 % of a poll at 50 agents before).
    """
    gc.set_threshold(*GC_THRESHOLDS)
    gc.collect()
    gc.freeze()
    # A poll is pure Python for hundreds of milliseconds; a scrape thread waits for the GIL
    # up to this long each time it needs it (CPython's default is 5 ms).
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)


def start_pollers(
    config: Config, publisher: Publisher, stop: threading.Event, **kwargs
) -> list[threading.Thread]:
    tune_gc()
    threads = []
    for server in config.servers:
        poller = ServerPoller(server, config, publisher, stop=stop, **kwargs)

        def loop(p: ServerPoller = poller) -> None:
            why = "shutdown"
            try:
                p.run()
            except BaseException as exc:  # run_poll catches everything; this is the backstop
                why = f"{type(exc).__name__} (a bug: see the log)"
                log.critical("poller thread died", exc_info=exc, extra={"server": p.server.name})
                raise
            finally:
                publisher.stopped(p.server.name, why)
                p.close()

        t = threading.Thread(target=loop, name=f"poll-{server.name}", daemon=True)
        t.start()
        threads.append(t)
    return threads
