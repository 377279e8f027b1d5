"""The exporter's own metrics, rendered per scrape: process_* and build_info.

process_* come from prometheus_client's process collector (a private registry, nothing global):
the same names, units and /proc parsing as every other Python exporter, and where /proc is
missing (not Linux) they are simply absent. They are appended to the cached page at scrape time
by the web layer because, unlike the polled metrics, they must be fresh on every scrape.
"""

from __future__ import annotations

import platform

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.process_collector import ProcessCollector

from exporter import __version__
from exporter.buildinfo import revision  # stamped into a built wheel, else git, else unknown

BUILD_INFO = "rocketchat_omnichannel_exporter_build_info"
PROCESS_METRIC_NAMES = (
    "process_virtual_memory_bytes",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
)
METRIC_NAMES = (*PROCESS_METRIC_NAMES, BUILD_INFO)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def build_info() -> bytes:
    labels = {
        "version": __version__,
        "revision": revision(),
        "python_version": platform.python_version(),
    }
    rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    return (
        f"# HELP {BUILD_INFO} Build information of the exporter (constant 1).\n"
        f"# TYPE {BUILD_INFO} gauge\n"
        f"{BUILD_INFO}{{{rendered}}} 1\n"
    ).encode()


class SelfMetrics:
    """Renders process_* (fresh each call) followed by the constant build_info line."""

    def __init__(self) -> None:
        self._registry = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self._registry)
        self._build_info = build_info()

    def render(self) -> bytes:
        return generate_latest(self._registry) + self._build_info
