"""Scrape latency: the exporter's /metrics against servers of the same series.

- floor: nginx serving the same bytes as a static file (nginx.py), plain and gzipped;
- prometheus_client: its own HTTP server and `generate_latest` over a CollectorRegistry
  holding the same families and samples (what an exporter built on collectors does per scrape).

Scrapers run in a separate process (4 threads, keep-alive connections; `gzip` sends
`Accept-Encoding: gzip` like Prometheus) so that their work does not compete with the server
under test for the GIL. The timed span is request to last body byte; gzipped bodies are not
decompressed (Prometheus does that after the scrape).
"""

from __future__ import annotations

import http.client
import statistics
import threading
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from .simproc import SPAWN

SCRAPERS = 4


# ---- the baseline built on prometheus_client -----------------------------------------------------


class _Fixed(Collector):
    def __init__(self, families: list[Metric]):
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def registry_of(page: bytes) -> CollectorRegistry:
    """A prometheus_client registry with the same families and samples as `page`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(list(text_string_to_metric_families(page.decode("utf-8")))))
    return registry


class PrometheusClientServer:
    def __init__(self, registry: CollectorRegistry):
        self._httpd, self._thread = start_http_server(0, addr="127.0.0.1", registry=registry)
        self.port = self._httpd.server_address[1]

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def generate_latest_seconds(registry: CollectorRegistry, runs: int = 3) -> tuple[float, int]:
    """Best-of-`runs` time of one generate_latest (single thread), and its size."""
    best, size = float("inf"), 0
    for _ in range(runs):
        t = time.perf_counter()
        size = len(generate_latest(registry))
        best = min(best, time.perf_counter() - t)
    return best, size


# ---- the scrapers --------------------------------------------------------------------------------


def _scrape_loop(
    port: int, seconds: float, minimum: int, out: list[float], sizes: set, gzip: bool
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Accept-Encoding": "gzip"} if gzip else {}
    deadline = time.perf_counter() + seconds
    n = 0
    while n < minimum or time.perf_counter() < deadline:
        t = time.perf_counter()
        conn.request("GET", "/metrics", headers=headers)
        response = conn.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - t
        if response.status != 200:
            raise RuntimeError(f"scrape of port {port}: HTTP {response.status}")
        if gzip != (response.getheader("Content-Encoding") == "gzip"):
            raise RuntimeError(f"scrape of port {port}: gzip asked {gzip}, not answered so")
        out.append(elapsed)
        sizes.add(len(body))
        n += 1
    conn.close()


def _scraper_main(conn: Any) -> None:
    while True:
        cmd = conn.recv()
        if cmd is None:
            return
        port, seconds, minimum, gzip = cmd
        latencies: list[float] = []
        body_sizes: set[int] = set()
        # warm-up: connections and the server's first-request paths
        _scrape_loop(port, 0.0, 2, [], set(), gzip)
        threads = [
            threading.Thread(
                target=_scrape_loop, args=(port, seconds, minimum, latencies, body_sizes, gzip)
            )
            for _ in range(SCRAPERS)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        conn.send((latencies, sorted(body_sizes)))


class Scrapers:
    """SCRAPERS concurrent scrapers in a subprocess, pointed at one server at a time."""

    def __init__(self) -> None:
        self._conn, child = SPAWN.Pipe()
        self._proc = SPAWN.Process(target=_scraper_main, args=(child,), daemon=True)
        self._proc.start()

    def run(self, port: int, seconds: float, minimum: int, gzip: bool = False) -> dict[str, Any]:
        self._conn.send((port, seconds, minimum, gzip))
        latencies, body_sizes = self._conn.recv()
        return summary(latencies) | {"bytes": body_sizes[-1] if body_sizes else 0}

    def close(self) -> None:
        self._conn.send(None)
        self._proc.join(timeout=10)


def summary(latencies: list[float]) -> dict[str, Any]:
    ordered = sorted(latencies)
    return {
        "scrapes": len(ordered),
        "p50": statistics.median(ordered),
        "p99": ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))],
    }
