"""Background polling: the only place that owns time and threads.

One thread per Rocket.Chat server. Each poll fetches the days the history cache asks for and
the live status, builds a complete snapshot and hands it to the publisher. Any failure keeps
the previous snapshot: a partial poll never replaces good data with half of it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from zoneinfo import ZoneInfo

from exporter.client import REASONS, RocketChatClient, RocketChatError, Stopped
from exporter.config.model import Config, ServerConfig
from exporter.exposition import Publisher, ServerHealth
from exporter.history import HistoryCache
from exporter.sessions import Streak, update_streaks
from exporter.snapshot import ServerSnapshot, SnapshotInputs, build_snapshot

log = logging.getLogger("exporter.poller")

ClientFactory = Callable[..., RocketChatClient]


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
        self.cache = HistoryCache(self.tz, config.history_days)
        self.streaks: dict[str, Streak] = {}
        self._requests: Counter[tuple[str, str]] = Counter()
        # Every reason starts at 0 so that rate() sees the first failure.
        self._errors: Counter[str] = Counter(dict.fromkeys((*REASONS, "internal"), 0))
        self._health = ServerHealth(server=server.name, poll_interval=config.poll_interval)
        self._stretched = False
        self.client = client_factory(server, on_request=self._count_request, stop=stop, clock=clock)

    def _count_request(self, endpoint: str, code: str) -> None:
        self._requests[(endpoint, code)] += 1

    # ---- one poll ---------------------------------------------------------------------------

    def poll_once(self) -> ServerSnapshot:
        """Fetch what is needed and build a snapshot; raises on any failure."""
        now = self.clock()
        for day in self.cache.days_to_fetch(now):
            history = self.client.fetch_history_day(day)
            # Each day is complete in itself, so caching it even if a later request of this
            # poll fails saves Rocket.Chat a request; only the snapshot is all-or-nothing.
            self.cache.store(history, self.clock())
        live = self.client.fetch_live_status()
        now = self.clock()
        self.cache.prune(now)
        available = (
            None if live.agents is None else [a.username for a in live.agents if a.available]
        )
        streaks = update_streaks(self.streaks, available, now)
        snapshot = build_snapshot(
            SnapshotInputs(
                server=self.server.name,
                tz=self.tz,
                days=self.cache.days(now),
                live=live,
                streaks=streaks,
                windows=self.config.windows,
                agent_filter=self.config.agents,
                staffing=self.server.staffing,
                include_open_sessions=self.config.windows_include_open_sessions,
            ),
            now,
        )
        self.streaks = streaks
        return snapshot

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
            self._errors["internal"] += 1
            error = f"internal error: {type(exc).__name__}"
            log.exception("poll failed unexpectedly", extra={"server": self.server.name})
        duration = time.monotonic() - started
        now = self.clock()
        h = self._health
        self._health = ServerHealth(
            server=self.server.name,
            up=snapshot is not None,
            last_success=now if snapshot is not None else h.last_success,
            last_poll=now,
            poll_duration=duration,
            poll_interval=self._effective_interval(duration),
            requests=tuple((e, c, n) for (e, c), n in sorted(self._requests.items())),
            poll_errors=tuple(sorted(self._errors.items())),
            last_error=error,
        )
        self.publisher.update(self._health, snapshot, now)
        return snapshot is not None

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
        log.info(
            "polling Rocket.Chat",
            extra={
                "server": self.server.name,
                "rocketchat_version": info.get("version", "?"),
                "timezone": self.server.timezone,
            },
        )

    def run(self) -> None:
        self.log_server_info()
        while not self.stop.is_set():
            started = time.monotonic()
            self.run_poll()
            # The effective interval: stretched when Rocket.Chat's rate limit cannot cover the
            # configured one (the client paces requests; this avoids queueing behind it).
            wait = self._health.poll_interval - (time.monotonic() - started)
            if wait > 0:
                self.stop.wait(wait)

    def close(self) -> None:
        self.client.close()


def start_pollers(
    config: Config, publisher: Publisher, stop: threading.Event, **kwargs
) -> list[threading.Thread]:
    threads = []
    for server in config.servers:
        poller = ServerPoller(server, config, publisher, stop=stop, **kwargs)

        def loop(p: ServerPoller = poller) -> None:
            try:
                p.run()
            finally:
                p.close()

        t = threading.Thread(target=loop, name=f"poll-{server.name}", daemon=True)
        t.start()
        threads.append(t)
    return threads
