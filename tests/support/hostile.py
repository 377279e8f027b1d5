"""A hostile "Rocket.Chat" on 127.0.0.1: answers that try to take the exporter down.

Each server answers every request the same way (`behaviour`). Every loop it runs is bounded
in bytes and in time, and stops when the client goes away.
"""

from __future__ import annotations

import contextlib
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_SECONDS = 30.0  # no answer lasts longer than this, whatever the client does
AGENT = (
    b'{"username":"agent","availableTimeInSeconds":3600,"serviceHistory":[{"startedAt":'
    b'"2024-03-05T08:00:00.000Z","stoppedAt":"2024-03-05T09:00:00.000Z"}]},'
)
BEHAVIOURS = ("huge", "endless_chunked", "drip", "gzip_bomb", "nested", "redirect")


def gzip_bomb(expanded: int) -> bytes:
    """A gzip body that expands to `expanded` bytes of a JSON-looking prefix and spaces."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = [compressor.compress(b'{"agents":[')]
    block = b" " * (1 << 20)
    for _ in range(expanded >> 20):
        out.append(compressor.compress(block))
    out.append(compressor.flush())
    return b"".join(out)


class HostileServer:
    def __init__(self, behaviour: str, *, redirect_to: str = "", huge_bytes: int = 200 << 20):
        assert behaviour in BEHAVIOURS, behaviour
        self.behaviour = behaviour
        self.redirect_to = redirect_to
        self.huge_bytes = huge_bytes
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.dripped: list[int] = []  # per dripped answer: bytes written before the client left
        self._bomb = gzip_bomb(512 << 20) if behaviour == "gzip_bomb" else b""
        hostile = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                hostile.requests.append((self.path, dict(self.headers)))
                # The client giving up (a broken pipe) is the point.
                with contextlib.suppress(TimeoutError, BrokenPipeError, ConnectionResetError):
                    getattr(hostile, f"_{hostile.behaviour}")(self)
                self.close_connection = True

            def log_message(self, format, *args) -> None:  # noqa: A002
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # ---- behaviours -----------------------------------------------------------------------------

    def _headers(self, h: BaseHTTPRequestHandler, status: int = 200, **headers: str) -> None:
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        # Every answer ends its connection: a retry never races a connection being closed.
        h.send_header("Connection", "close")
        for name, value in headers.items():
            h.send_header(name.replace("_", "-"), value)
        h.end_headers()

    def _huge(self, h: BaseHTTPRequestHandler) -> None:
        """A valid-looking history answer of `huge_bytes`, announced with its length."""
        self._headers(h, Content_Length=str(self.huge_bytes))
        chunk = AGENT * 8000  # ~1.1 MB
        sent, deadline = 0, time.monotonic() + MAX_SECONDS
        h.wfile.write(b'{"agents":[')
        sent += 11
        while sent + len(chunk) < self.huge_bytes and time.monotonic() < deadline:
            h.wfile.write(chunk)
            sent += len(chunk)

    def _endless_chunked(self, h: BaseHTTPRequestHandler) -> None:
        self._headers(h, Transfer_Encoding="chunked")
        chunk = AGENT * 8000
        frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        deadline = time.monotonic() + MAX_SECONDS
        h.wfile.write(b'b\r\n{"agents":[\r\n')
        while time.monotonic() < deadline:
            h.wfile.write(frame)

    def _drip(self, h: BaseHTTPRequestHandler) -> None:
        """One byte every 0.25 s: each read is quick, the whole answer takes minutes."""
        body = b'{"agents":[],"total":0,"success":true}' + b" " * 1000
        self._headers(h, Content_Length=str(len(body)))
        deadline = time.monotonic() + MAX_SECONDS
        self.dripped.append(0)
        for i in range(len(body)):
            if time.monotonic() > deadline:
                return
            h.wfile.write(body[i : i + 1])
            h.wfile.flush()
            self.dripped[-1] = i + 1
            time.sleep(0.25)

    def _gzip_bomb(self, h: BaseHTTPRequestHandler) -> None:
        self._headers(h, Content_Encoding="gzip", Content_Length=str(len(self._bomb)))
        h.wfile.write(self._bomb)

    def _nested(self, h: BaseHTTPRequestHandler) -> None:
        body = b"[" * 200_000 + b"]" * 200_000
        self._headers(h, Content_Length=str(len(body)))
        h.wfile.write(body)

    def _redirect(self, h: BaseHTTPRequestHandler) -> None:
        self._headers(h, 302, Location=self.redirect_to + h.path, Content_Length="0")
