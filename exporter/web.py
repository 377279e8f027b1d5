"""The exporter's HTTP endpoint: /metrics, a landing page, /healthz and /readyz.

Scrapes only read the pre-rendered page from the publisher (plus the per-scrape process_* and
build_info lines); they never call Rocket.Chat. Optional TLS and basic auth come from
`--web.config.file` (see webconfig.py): the TLS handshake happens in the connection's own
thread, so a slow client cannot stall the others. Listening sockets, the connection cap and the
deadlines are in weblisten.py.
"""

from __future__ import annotations

import contextlib
import html
import io
import logging
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import cast

from exporter import __version__
from exporter.exposition import CONTENT_TYPE, ServerHealth
from exporter.process_metrics import SelfMetrics
from exporter.publisher import Publisher
from exporter.webconfig import HANDSHAKE_TIMEOUT_SECONDS, WebGuard
from exporter.weblisten import (
    BUSY,
    DEFAULT_MAX_CONNECTIONS,
    FD_RESERVE,
    HEADERS,
    IDLE,
    IDLE_TIMEOUT_SECONDS,
    Acceptor,
    Conn,
    Connections,
    bind,
    connection_cap,
    parse_listen_address,
    whole_tls_record,
)

log = logging.getLogger("exporter.web")


__all__ = ["WebServer", "landing_page", "parse_listen_address"]
ALLOW = "GET, HEAD"


def _when(ts: float | None, now: float) -> str:
    if ts is None:
        return "never"
    stamp = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{stamp} ({now - ts:.0f} s ago)"


def fill_text(health: ServerHealth) -> str:
    """The history cache's fill, for people: "complete", or
    "37 % (3 of 8 days), about 4 min left"."""
    ratio = health.fill_ratio
    if ratio >= 1:
        return "complete"
    days = f"{health.fill_days:.1f}".removesuffix(".0")
    text = f"{100 * ratio:.0f} % ({days} of {health.fill_wanted} days)"
    if health.fill_eta is not None:
        text += f", about {_duration(health.fill_eta)} left"
    return text


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def landing_page(publisher: Publisher, now: float, metrics_path: str = "/metrics") -> bytes:
    rows = []
    for view in publisher.views(now):
        h = view.health
        state = "up" if h.up else ("waiting for first poll" if h.last_poll is None else "down")
        if h.up and view.snapshot is None:
            state = "stale"
        if h.stalled:
            state = "stalled"
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(cell))}</td>"
                for cell in (
                    h.server,
                    state,
                    fill_text(h),
                    _when(h.last_poll, now),
                    _when(h.last_success, now),
                    h.stalled or h.last_error or "-",
                    "; ".join(h.warnings) or "-",
                )
            )
            + "</tr>"
        )
    href = html.escape(metrics_path.lstrip("/"), quote=True)
    body = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Rocket.Chat Omnichannel Exporter</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.2em .8em;text-align:left}}</style>
</head><body>
<h1>Rocket.Chat Omnichannel Exporter</h1>
<p>Version {html.escape(__version__)}. Metrics come from background polling of Rocket.Chat.</p>
<p><a href="{href}">Metrics</a> &middot; <a href="healthz">Health</a> &middot;
<a href="readyz">Readiness</a></p>
<table><tr><th>Server</th><th>State</th><th>History cache</th><th>Last poll</th>
<th>Last success</th>
<th>Last error</th><th>Warnings</th></tr>
{"".join(rows)}
</table></body></html>
"""
    return body.encode("utf-8", "replace")  # text is cleaned at the edge; this is a backstop


def make_handler(
    publisher: Publisher,
    clock: Callable[[], float] = time.time,
    guard: WebGuard | None = None,
    telemetry_path: str = "/metrics",
    self_metrics: SelfMetrics | None = None,
):
    metrics = self_metrics or SelfMetrics()

    class Handler(BaseHTTPRequestHandler):
        """One connection. `self.server` is its Session (the connection's slot in the table)."""

        server_version = f"rocketchat-omnichannel-exporter/{__version__}"
        protocol_version = "HTTP/1.1"
        # Headers and body leave in two writes; with Nagle's algorithm the second waits for
        # the scraper's delayed ACK (~40 ms on a small gzip page).
        disable_nagle_algorithm = True
        timeout = IDLE_TIMEOUT_SECONDS  # per read or write; the table bounds each state in total

        @property
        def session(self) -> Session:
            return cast(Session, self.server)

        def handle_one_request(self) -> None:
            session = self.session
            if session.conn.served:
                # Keep-alive: wait for the next request's first byte (idle deadline), then the
                # rest of its head must arrive within the header deadline.
                session.state(IDLE)
                try:
                    if not cast(io.BufferedReader, self.rfile).peek(1):
                        self.close_connection = True
                        return
                except OSError:  # timeout, reset, or closed by the table
                    self.close_connection = True
                    return
                session.state(HEADERS)
            session.conn.served += 1
            super().handle_one_request()

        def parse_request(self) -> bool:
            if not super().parse_request():
                return False
            self.session.state(BUSY)
            if self.command in ("GET", "HEAD"):
                return True
            # Any other method: 405 and close (an unread request body must not be parsed as
            # the next request).
            self.close_connection = True
            self._send(
                405,
                "text/plain; charset=utf-8",
                b"method not allowed\n",
                extra={"Allow": ALLOW, "Connection": "close"},
            )
            return False

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if guard is not None and not guard.authorized(self.headers.get("Authorization")):
                # Every path, like exporter-toolkit: nothing is served without the password.
                self._send(
                    401,
                    "text/plain; charset=utf-8",
                    b"Unauthorized\n",
                    extra={"WWW-Authenticate": 'Basic realm="rocketchat-omnichannel-exporter"'},
                )
                return
            path = self.path.split("?", 1)[0]
            if path == telemetry_path:
                gz = "gzip" in self.headers.get("Accept-Encoding", "")
                # Sent in parts, not joined: joining copied the whole page on every scrape.
                parts = publisher.parts(clock(), metrics.render(), gzipped=gz)
                self._send(200, CONTENT_TYPE, parts, gzip=gz)
            elif path == "/":
                page = landing_page(publisher, clock(), metrics_path=telemetry_path)
                self._send(200, "text/html; charset=utf-8", page)
            elif path == "/healthz":
                self._send(200, "text/plain; charset=utf-8", b"ok\n")
            elif path == "/readyz":
                waiting = publisher.waiting_for(clock())
                if not waiting:
                    self._send(200, "text/plain; charset=utf-8", b"ready\n")
                else:
                    text = "not ready:\n" + "".join(f"{line}\n" for line in waiting)
                    self._send(503, "text/plain; charset=utf-8", text.encode("utf-8", "replace"))
            else:
                self._send(404, "text/plain; charset=utf-8", b"not found\n")

        def do_HEAD(self) -> None:  # noqa: N802
            self.do_GET()

        def _send(
            self,
            code: int,
            ctype: str,
            body: bytes | Sequence[bytes | memoryview],
            gzip: bool = False,
            extra: dict[str, str] | None = None,
        ) -> None:
            parts = (body,) if isinstance(body, bytes) else tuple(body)
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(sum(len(p) for p in parts)))
            if gzip:
                self.send_header("Content-Encoding", "gzip")
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                for part in parts:
                    if part:
                        self.wfile.write(part)

        def log_message(self, format: str, *args) -> None:  # noqa: A002
            log.debug("http %s", format % args)

    return Handler


class Session:
    """What a handler sees as `self.server`: its connection and a way to change its state."""

    def __init__(self, conn: Conn, connections: Connections):
        self.conn = conn
        self._connections = connections

    def state(self, state: str) -> None:
        self._connections.set_state(self.conn, state)


class WebServer:
    """Serves on one or more addresses ((host, port) tuples; '' = dual-stack any)."""

    def __init__(
        self,
        address: tuple[str, int] | Sequence[tuple[str, int]],
        publisher: Publisher,
        *,
        guard: WebGuard | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        telemetry_path: str = "/metrics",
        fd_reserve: int = FD_RESERVE,
        **kwargs,
    ):
        if isinstance(address[0], str):
            addresses = [cast(tuple[str, int], address)]
        else:
            addresses = list(cast(Sequence[tuple[str, int]], address))
        self.guard = guard
        self.max_connections, self.cap_reason = connection_cap(max_connections, fd_reserve)
        self.handler = make_handler(publisher, guard=guard, telemetry_path=telemetry_path, **kwargs)
        self.listeners: list[socket.socket] = []
        try:
            for host, port in addresses:
                self.listeners.append(bind(host, port))
        except OSError:
            for sock in self.listeners:
                sock.close()
            raise
        self.connections = Connections(self.max_connections)
        whole = {"whole": whole_tls_record} if guard is not None and guard.tls else {}
        self.acceptor = Acceptor(self.listeners, self.connections, self._serve, **whole)

    @property
    def port(self) -> int:
        return self.ports[0]

    @property
    def ports(self) -> list[int]:
        return [sock.getsockname()[1] for sock in self.listeners]

    @property
    def addresses(self) -> list[str]:
        out = []
        for sock in self.listeners:
            host, port = sock.getsockname()[:2]
            out.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        return out

    @property
    def scheme(self) -> str:
        return "https" if self.guard is not None and self.guard.tls else "http"

    def start(self) -> None:
        self.acceptor.start()

    def stop(self) -> None:
        self.acceptor.stop()

    def _serve(self, conn: Conn) -> None:
        context = self.guard.ssl_context() if self.guard is not None else None
        if context is not None:
            # The handshake runs here, in the connection's thread, within the header deadline
            # (the table can interrupt it: the wrapper is in place before it starts).
            conn.sock.settimeout(HANDSHAKE_TIMEOUT_SECONDS)
            with conn.lock:
                if conn.killed:  # evicted or expired before its handshake began
                    return
                conn.sock = context.wrap_socket(
                    conn.sock, server_side=True, do_handshake_on_connect=False
                )
            try:
                conn.sock.do_handshake()
            except (ssl.SSLError, OSError) as exc:
                log.debug("TLS handshake failed", extra={"client": conn.peer[0], "err": str(exc)})
                return
        try:
            self.handler(conn.sock, conn.peer, Session(conn, self.connections))
        except OSError as exc:  # reset, timed out, or closed by the table
            log.debug("connection ended", extra={"client": conn.peer[0], "err": str(exc)})
        finally:
            if context is not None:
                with contextlib.suppress(OSError, ValueError):
                    conn.sock.shutdown(socket.SHUT_RDWR)
