"""Real processes for end-to-end tests: the exporter, the simulator, Prometheus.

Everything binds 127.0.0.1; every wait polls with a deadline.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check: Callable[[], object], timeout: float, what: str, interval: float = 0.1):
    """Poll `check` until it returns something truthy; fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last one
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_exc})")


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def require_binary(name: str) -> str:
    """The path of a binary the real-path tests need: fail in CI, skip elsewhere."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is required in CI (apt-get install prometheus)")
        pytest.skip(f"{name} not installed")
    return path


class Process:
    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None):
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


def start_exporter(
    config_path: Path, tmp: Path, port: int | None = None, *extra: str
) -> tuple[Process, str]:
    port = port or free_port()
    proc = Process(
        [
            sys.executable,
            "-m",
            "exporter",
            "--config.file",
            str(config_path),
            "--web.listen-address",
            f"127.0.0.1:{port}",
            *extra,
        ],
        tmp / f"exporter-{port}.log",
    )
    return proc, f"http://127.0.0.1:{port}"


class Prometheus:
    """Debian's prometheus in the foreground with a temp config and data dir."""

    def __init__(
        self,
        tmp: Path,
        scrape_targets: list[str],
        rule_files: list[str] = (),
        scrape_interval: str = "1s",
        job: str = "rocketchat-omnichannel",
    ):
        binary = require_binary("prometheus")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = tmp / "prometheus.yml"
        cfg.write_text(
            json.dumps(
                {
                    "global": {
                        "scrape_interval": scrape_interval,
                        "evaluation_interval": scrape_interval,
                    },
                    "rule_files": [str(Path(r).resolve()) for r in rule_files],
                    "scrape_configs": [
                        {"job_name": job, "static_configs": [{"targets": scrape_targets}]}
                    ],
                }
            )
        )
        data = tmp / "prom-data"
        data.mkdir()
        self.proc = Process(
            [
                binary,
                f"--config.file={cfg}",
                f"--storage.tsdb.path={data}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            tmp / "prometheus.log",
        )
        wait_for(lambda: http_get(self.url + "/-/ready")[0] == 200, 30, "prometheus ready")

    def api(self, path: str, **params: str) -> dict:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        status, body = http_get(url)
        doc = json.loads(body)
        if status != 200 or doc.get("status") != "success":
            raise AssertionError(f"prometheus {path} {params}: {status} {doc}")
        return doc["data"]

    def query(self, expr: str) -> list[dict]:
        return self.api("query", query=expr)["result"]

    def stop(self) -> None:
        self.proc.stop()
