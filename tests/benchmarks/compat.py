"""The exporter's code as the benchmark reaches it, in main's layout or the 0.1 baseline's.

The worker of a `--baseline` run has the baseline's `exporter` first on its path (cli.py);
everything the rig touches is looked up here, so one rig measures both. Main's layout: the
client package exporter/rocketchat/ (JSON decoded by `transport.decode_json`), the publisher in
exporter/publisher.py. The baseline's: exporter/client.py (JSON decoded by httpx's
Response.json), exporter/exposition.py's Publisher, exporter/history.py's local_date.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from types import ModuleType
from typing import Any

import exporter
import exporter.poller
import exporter.snapshot

NEW = importlib.util.find_spec("exporter.rocketchat") is not None
LAYOUT = "new" if NEW else "old"
CODE_PATH = exporter.__path__[0]

if NEW:
    client_module: ModuleType = importlib.import_module("exporter.rocketchat.client")
    transport_module: ModuleType | None = importlib.import_module("exporter.rocketchat.transport")
    PAGE_SIZE: int = importlib.import_module("exporter.rocketchat.paging").PAGE_SIZE
    Publisher: Any = importlib.import_module("exporter.publisher").Publisher
    local_date: Callable = importlib.import_module("exporter.localtime").local_date
else:
    client_module = importlib.import_module("exporter.client")
    transport_module = None
    PAGE_SIZE = client_module.PAGE_SIZE
    Publisher = importlib.import_module("exporter.exposition").Publisher
    local_date = importlib.import_module("exporter.history").local_date

RocketChatClient: Any = client_module.RocketChatClient


def scrape_bytes(exp: Any) -> tuple[bytes, bytes]:
    """What a scrape of the exporter answers, plain and gzipped: main appends the process's
    own metrics (process_*, read at each scrape) to the publisher's page; 0.1 did not."""
    page, packed = exp.page(), exp.page(gzipped=True)
    try:
        from exporter.process_metrics import SelfMetrics
    except ImportError:
        return page, packed
    tail = SelfMetrics().render()
    publisher, now = exp.publisher, exp.clock.now()
    if hasattr(publisher, "parts"):  # the page as parts (main)
        plain = b"".join(publisher.parts(now, tail))
        return plain, b"".join(publisher.parts(now, tail, gzipped=True))
    from exporter.web import gzip_with_tail  # revisions between 0.1 and the page as parts

    return page + tail, gzip_with_tail(packed, tail)


ServerPoller: Any = exporter.poller.ServerPoller


def tune_gc() -> bool:
    """What the exporter's process does before its pollers start (main: raised GC thresholds;
    the baseline had no such step). True if there was one."""
    tune = getattr(exporter.poller, "tune_gc", None)
    if tune is None:
        return False
    tune()
    return True
