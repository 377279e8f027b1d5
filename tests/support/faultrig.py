"""A rig for fault tests: simulated Rocket.Chat over real HTTP, the real client and poller.

The simulator, the poller and the client share one ManualClock: backoff and rate-limit waits
advance it instead of sleeping, so minutes of Rocket.Chat time pass in milliseconds while
every request still goes over a real socket. The simulator's HTTP `Date` header follows the
same clock (as a real server's follows its own), so clock-skew handling can be tested.

Shared by tests/test_faults.py, tests/test_security.py and tests/test_soak.py.
"""

from __future__ import annotations

import dataclasses
import functools
import http.client
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import parse_config
from exporter.poller import ServerPoller
from exporter.process_metrics import PROCESS_METRIC_NAMES
from exporter.publisher import Publisher
from exporter.rocketchat.client import RocketChatClient
from exporter.simulator import ManualClock, Simulator, SimulatorConfig, serve
from exporter.simulator.server import SimulatorServer

# Distinctive credentials: a test greps every output for them.
USER_ID = "uid-Q7f3LeakCheck-9c2e"
TOKEN = "tok-Z8p1LeakCheck-4b6d0a3f"
T0 = datetime(2026, 3, 4, 10, 0, tzinfo=UTC).timestamp()  # a Wednesday, 10:00 UTC

HEALTH = {
    "up",
    "last_success_timestamp_seconds",
    "poll_duration_seconds",
    "poll_interval_seconds",
    "api_requests_total",
    "poll_errors_total",
    "exporter_build_info",
    "server_info",
    "fill_progress_ratio",
    "fill_eta_seconds",
    *PROCESS_METRIC_NAMES,  # the exporter's own process, appended per scrape
}
PREFIX = "rocketchat_omnichannel_"
HISTORY_PATH = "/api/v1/livechat/analytics/agents/available-for-service-history"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_page(page: bytes | str) -> Samples:
    """Every sample of an exposition page, keyed by (name without prefix, labels)."""
    text = page.decode() if isinstance(page, bytes) else page
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            name = s.name.removeprefix(PREFIX)
            out[(name, frozenset(s.labels.items()))] = s.value
    return out


def data_of(samples: Samples) -> Samples:
    """The samples that come from a snapshot (everything but the exporter's own health)."""
    return {
        k: v
        for k, v in samples.items()
        if k[0].removesuffix("_total").removesuffix("_created") not in HEALTH and k[0] not in HEALTH
    }


class RequestLog:
    """Wraps Simulator.handle to record (simulated time, route, status) of every request."""

    def __init__(self, sim: Simulator):
        self.entries: list[tuple[float, str, Any, str]] = []
        self.headers: list[dict[str, str]] = []  # the answer's headers, same index
        self._lock = threading.Lock()
        handle = sim.handle

        def recording(method, target, headers, client="127.0.0.1"):  # noqa: ANN001
            reply = handle(method, target, headers, client)
            route = target.split("?", 1)[0].rsplit("/", 1)[-1]
            with self._lock:
                self.entries.append((sim.clock.now(), route, reply.status, target))
                self.headers.append(dict(reply.headers))
            return reply

        sim.handle = recording  # type: ignore[method-assign]

    def since(self, index: int) -> list[tuple[float, str, Any, str]]:
        with self._lock:
            return self.entries[index:]

    def __len__(self) -> int:
        with self._lock:
            return len(self.entries)


class Rig:
    """One simulated Rocket.Chat and one in-process exporter (poller + publisher) on it."""

    def __init__(
        self,
        *,
        start: float = T0,
        agents: int = 8,
        sim_tz: str = "UTC",
        tz: str | None = None,
        windows: tuple[str, ...] = ("1h", "today", "yesterday", "24h"),
        poll_interval: str = "60s",
        max_staleness: str = "300s",
        timeout: float = 2.0,
        include_open: bool = True,
        server_extra: dict[str, Any] | None = None,
        client_cls: type[RocketChatClient] = RocketChatClient,
        sleep: Callable[[float], None] | None = None,
        skew: float = 0.0,
        agent_filter: dict[str, Any] | None = None,
        record: bool = True,
        config_extra: dict[str, Any] | None = None,
        **sim: Any,
    ):
        self.clock = ManualClock(start)
        settings: dict[str, Any] = {
            "agents": agents,
            "seed": 11,
            "timezone": sim_tz,
            "rate_limit": 0,
            "user_id": USER_ID,
            "auth_token": TOKEN,
        }
        settings.update(sim)
        self.sim = Simulator(SimulatorConfig(**settings), clock=self.clock)
        self.requests = RequestLog(self.sim) if record else None
        self.server: SimulatorServer = serve(self.sim, host="127.0.0.1", port=0)
        server = {
            "name": "rc",
            "url": self.server.url,
            "user_id": USER_ID,
            "auth_token": TOKEN,
            "timezone": tz or sim_tz,
            "timeout": timeout,
        }
        server.update(server_extra or {})
        self.config = parse_config(
            {
                "poll_interval": poll_interval,
                "max_staleness": max_staleness,
                "windows": list(windows),
                "windows_include_open_sessions": include_open,
                "agents": agent_filter or {},
                "servers": [server],
                **(config_extra or {}),
            }
        )
        self.publisher = Publisher(["rc"], self.config.max_staleness)
        self._client_cls = client_cls
        self._sleep = sleep or self.clock.advance
        self.skew = skew  # the exporter's clock minus Rocket.Chat's
        self.stop = threading.Event()
        self.poller = self.new_poller()

    def new_poller(self, publisher: Publisher | None = None) -> ServerPoller:
        """A fresh exporter (as after a restart): empty cache, no streaks."""
        return ServerPoller(
            self.config.servers[0],
            self.config,
            publisher or self.publisher,
            stop=self.stop,
            clock=self.exporter_now,
            client_factory=functools.partial(self._client_cls, sleep=self._sleep),
        )

    def exporter_now(self) -> float:
        return self.clock.now() + self.skew

    def use_url(self, url: str) -> None:
        """Point the exporter at another address (a proxy in front of the simulator): a
        fresh poller with the same settings."""
        server = dataclasses.replace(self.config.servers[0], url=url)
        self.config = dataclasses.replace(self.config, servers=(server,))
        self.poller.close()
        self.poller = self.new_poller()

    def burn(self, path: str = HISTORY_PATH, times: int = 12) -> None:
        """Another client (a second replica, a script) spends a route's rate-limit budget
        from our address, so that our next call there gets a 429."""
        with httpx.Client(base_url=self.server.url) as other:
            for _ in range(times):
                other.get(
                    path,
                    params={"start": "2026-03-04T12:00:00Z", "end": "2026-03-04T12:00:00Z"},
                    headers={"X-User-Id": USER_ID, "X-Auth-Token": TOKEN},
                )

    # ---- driving --------------------------------------------------------------------------

    def poll(self, advance: float = 0.0) -> bool:
        if advance:
            self.clock.advance(advance)
        return self.poller.run_poll()

    def polls(self, n: int, step: float = 60.0) -> list[bool]:
        return [self.poll(step) for _ in range(n)]

    # ---- reading --------------------------------------------------------------------------

    def page(self) -> bytes:
        return self.publisher.page(self.exporter_now())

    def samples(self) -> Samples:
        return parse_page(self.page())

    def data(self) -> Samples:
        return data_of(self.samples())

    def value(self, name: str, **labels: str) -> float | None:
        key = (name, frozenset({"server": "rc", **labels}.items()))
        return self.samples().get(key)

    def up(self) -> float | None:
        return self.value("up")

    def errors(self, reason: str) -> float:
        return self.value("poll_errors_total", reason=reason) or 0.0

    def api(self, endpoint: str, code: str) -> float:
        return self.value("api_requests_total", endpoint=endpoint, code=code) or 0.0

    def health(self):
        return self.publisher.views(self.exporter_now())[0].health

    def close(self) -> None:
        self.stop.set()
        self.poller.close()
        self.server.stop()


def warnings_from(caplog, logger: str = "exporter", level: int = logging.WARNING) -> list[str]:
    return [
        f"{r.getMessage()} {getattr(r, 'reason', '')} {getattr(r, 'err', '')}"
        for r in caplog.records
        if r.name.startswith(logger) and r.levelno >= level
    ]


# ---- a proxy in front of the simulator that can rewrite answers --------------------------------

Rewrite = Callable[[str, int, dict[str, str], bytes], tuple[int, dict[str, str], bytes] | None]


class RewritingProxy:
    """An HTTP proxy on 127.0.0.1 in front of `upstream` that lets a test rewrite answers.

    `rewrite(path, status, headers, body)` returns a new (status, headers, body), or None to
    pass the answer through. Models a reverse proxy (HTML error pages) or a server version
    whose answers drift in ways the simulator does not offer.
    """

    def __init__(self, upstream: SimulatorServer):
        self.rewrite: Rewrite | None = None
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 30

            def do_GET(self) -> None:  # noqa: N802
                conn = http.client.HTTPConnection(upstream.host, upstream.port, timeout=30)
                try:
                    conn.request("GET", self.path, headers=dict(self.headers.items()))
                    resp = conn.getresponse()
                    status, body = resp.status, resp.read()
                    headers = {k: v for k, v in resp.getheaders() if k.lower() != "content-length"}
                finally:
                    conn.close()
                changed = proxy.rewrite and proxy.rewrite(self.path, status, headers, body)
                if changed:
                    status, headers, body = changed
                self.send_response(status)
                for k, v in headers.items():
                    if k.lower() not in ("date", "server", "connection", "transfer-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
