"""The exporter's HTTP endpoint: /metrics, a landing page, /healthz and /readyz.

Scrapes only read the pre-rendered page from the publisher; they never call Rocket.Chat.
Optional TLS and basic auth come from `--web.config.file` (see webconfig.py): the TLS
handshake happens in the connection's own thread, so a slow client cannot stall the others.
"""

from __future__ import annotations

import contextlib
import html
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from exporter import __version__
from exporter.exposition import CONTENT_TYPE
from exporter.publisher import Publisher
from exporter.webconfig import HANDSHAKE_TIMEOUT_SECONDS, WebGuard

log = logging.getLogger("exporter.web")


def parse_listen_address(address: str) -> tuple[str, int]:
    """`:9875`, `0.0.0.0:9875`, `127.0.0.1:0`, `[::1]:9875` -> (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(
            f"--web.listen-address: {address!r} is not host:port (e.g. ':9875' or '127.0.0.1:9875')"
        )
    return host.strip("[]"), int(port)


def _when(ts: float | None, now: float) -> str:
    if ts is None:
        return "never"
    stamp = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{stamp} ({now - ts:.0f} s ago)"


def landing_page(publisher: Publisher, now: float) -> bytes:
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
                    _when(h.last_poll, now),
                    _when(h.last_success, now),
                    h.stalled or h.last_error or "-",
                    "; ".join(h.warnings) or "-",
                )
            )
            + "</tr>"
        )
    body = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Rocket.Chat Omnichannel Exporter</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.2em .8em;text-align:left}}</style>
</head><body>
<h1>Rocket.Chat Omnichannel Exporter</h1>
<p>Version {html.escape(__version__)}. Metrics come from background polling of Rocket.Chat.</p>
<p><a href="metrics">Metrics</a> &middot; <a href="healthz">Health</a> &middot;
<a href="readyz">Readiness</a></p>
<table><tr><th>Server</th><th>State</th><th>Last poll</th><th>Last success</th>
<th>Last error</th><th>Warnings</th></tr>
{"".join(rows)}
</table></body></html>
"""
    return body.encode("utf-8", "replace")  # text is cleaned at the edge; this is a backstop


IDLE_TIMEOUT_SECONDS = 60.0  # an idle keep-alive connection does not pin a thread forever


def make_handler(
    publisher: Publisher,
    clock: Callable[[], float] = time.time,
    guard: WebGuard | None = None,
):
    class Handler(BaseHTTPRequestHandler):
        server_version = f"rocketchat-omnichannel-exporter/{__version__}"
        protocol_version = "HTTP/1.1"
        timeout = IDLE_TIMEOUT_SECONDS

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
            if path == "/metrics":
                gz = "gzip" in self.headers.get("Accept-Encoding", "")
                body = publisher.page(clock(), gzipped=gz)
                self._send(200, CONTENT_TYPE, body, gzip=gz)
            elif path == "/":
                self._send(200, "text/html; charset=utf-8", landing_page(publisher, clock()))
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
            body: bytes,
            gzip: bool = False,
            extra: dict[str, str] | None = None,
        ) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            if gzip:
                self.send_header("Content-Encoding", "gzip")
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # noqa: A002
            log.debug("http %s", format % args)

    return Handler


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, handler, guard: WebGuard | None):  # noqa: ANN001
        self.guard = guard
        super().__init__(address, handler)

    def finish_request(self, request, client_address) -> None:  # noqa: ANN001
        context = self.guard.ssl_context() if self.guard is not None else None
        if context is None:
            super().finish_request(request, client_address)
            return
        # The handshake runs here, in the connection's thread, with a deadline: a client
        # that connects and says nothing cannot hold up anyone else.
        request.settimeout(HANDSHAKE_TIMEOUT_SECONDS)
        try:
            tls = context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.debug("TLS handshake failed", extra={"client": client_address[0], "err": str(exc)})
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            with contextlib.suppress(OSError):
                tls.shutdown(socket.SHUT_RDWR)
            tls.close()


class WebServer:
    def __init__(
        self,
        address: tuple[str, int],
        publisher: Publisher,
        *,
        guard: WebGuard | None = None,
        **kwargs,
    ):
        self.guard = guard
        self.httpd = _HTTPServer(address, make_handler(publisher, guard=guard, **kwargs), guard)
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="http", daemon=True
        )

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def scheme(self) -> str:
        return "https" if self.guard is not None and self.guard.tls else "http"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
