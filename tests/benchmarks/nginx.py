"""The scrape floor: nginx from Debian serving the exporter's page as a static file.

Nothing of the exporter's code path is involved: the same bytes, written once to a file,
served by a server built for exactly that. `/metrics` is the plain page; a client sending
`Accept-Encoding: gzip` gets the exporter's own gzipped bytes (metrics.gz, gzip_static) with
`Content-Encoding: gzip`, as from the exporter. Started on 127.0.0.1 with its own prefix,
config and logs in a temporary directory; one process (master_process off), so nothing runs
as another user and nothing outlives `stop`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SKIPPED = "nginx is not installed (apt-get install -y --no-install-recommends nginx): no floor"

_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location = /metrics {{
            root {prefix}/www;
            default_type "{content_type}";
            gzip_static on;
        }}
    }}
}}
"""


def binary() -> str | None:
    """The nginx executable, or None (then the floor is skipped with SKIPPED)."""
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NginxFloor:
    def __init__(self, plain: bytes, packed: bytes, executable: str, timeout: float = 10.0):
        self._dir = tempfile.TemporaryDirectory(prefix="bench-nginx-")
        prefix = Path(self._dir.name)
        (prefix / "www").mkdir()
        (prefix / "tmp").mkdir()
        (prefix / "www" / "metrics").write_bytes(plain)
        (prefix / "www" / "metrics.gz").write_bytes(packed)
        self.port = _free_port()
        conf = prefix / "nginx.conf"
        conf.write_text(
            _CONF.format(prefix=prefix, port=self.port, content_type=CONTENT_TYPE),
            encoding="utf-8",
        )
        cmd = [executable, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)]
        self._proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=prefix
        )
        self._wait_ready(prefix, timeout)

    def _wait_ready(self, prefix: Path, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                log = (prefix / "error.log").read_text(errors="replace")[-500:]
                self._dir.cleanup()
                raise RuntimeError(f"nginx exited {self._proc.returncode}: {err} {log}".strip())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.02)  # polling for readiness with a deadline, not a fixed wait
        self.stop()
        raise RuntimeError(f"nginx did not listen on 127.0.0.1:{self.port} in {timeout:.0f} s")

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        if self._proc.stderr:
            self._proc.stderr.close()
        self._dir.cleanup()
