"""Where backfill writes: one OpenMetrics file per server and day, or one file for the range.

Resumable by construction: each day is written to a temporary name and renamed when
complete, then recorded in a manifest (`backfill.json`, rewritten atomically after every
day). A rerun skips the days the manifest lists with the same coverage, and refuses an
output written with other settings (step, labels, servers, staffing, agent filter), whose
days would not fit together.

- Directory (an existing directory, or a path ending in "/"): `<server>-<YYYY-MM-DD>.om`,
  each a complete OpenMetrics document ending `# EOF`, one promtool run each.
- File (anything else): the days are written to `FILE.parts/` without headers, their
  families' byte ranges kept in the manifest; `finish()` joins them family by family into
  FILE (OpenMetrics wants each family in one piece) by streaming copies, never holding a
  day in memory. The parts stay, so a rerun over a longer range fetches only the new days.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any, BinaryIO

from exporter.backfillday import EOF, FAMILIES, header

MANIFEST = "backfill.json"
FORMAT = 1
_COPY = 1 << 20


class OutputError(Exception):
    """The output cannot be used (unwritable, written with other settings): a usage error."""


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


class Output:
    def __init__(self, path: str, settings: Mapping[str, Any]):
        self.single = not (path.endswith(("/", os.sep)) or os.path.isdir(path))
        self.path = path.rstrip("/") or "/"
        self.dir = self.path + ".parts" if self.single else self.path
        self.settings = json.loads(json.dumps(settings))  # as it reads back from JSON
        try:
            if self.single:
                parent = os.path.dirname(os.path.abspath(self.path))
                if not os.path.isdir(parent):
                    raise OutputError(
                        f"--output {path}: directory {parent} does not exist; create it or "
                        "choose another path"
                    )
                self._check_writable(parent, path)
            os.makedirs(self.dir, exist_ok=True)
            self._check_writable(self.dir, path)
        except OSError as exc:
            raise OutputError(
                f"--output {path}: cannot create {self.dir}: {exc.strerror or exc}; choose a "
                "writable path"
            ) from None
        self.days: dict[str, dict[str, Any]] = {}
        self._load(path)

    @staticmethod
    def _check_writable(directory: str, given: str) -> None:
        if not os.access(directory, os.W_OK | os.X_OK):
            raise OutputError(
                f"--output {given}: {directory} is not writable by this user; choose a "
                "writable path or fix its permissions"
            )

    def _load(self, given: str) -> None:
        path = os.path.join(self.dir, MANIFEST)
        if not os.path.exists(path):
            return
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
        except (OSError, ValueError) as exc:
            raise OutputError(
                f"--output {given}: unreadable {path} ({exc}); delete it (and the day files "
                "beside it) to start over"
            ) from None
        if doc.get("format") != FORMAT or doc.get("settings") != self.settings:
            raise OutputError(
                f"--output {given} was written with other settings (step, --label, servers, "
                "staffing or agents): its days would not join with these; use another "
                f"--output, or delete {self.dir} to start over"
            )
        self.days = dict(doc.get("days", {}))

    @staticmethod
    def key(server: str, day: date) -> str:
        return f"{server}/{day.isoformat()}"

    def done(self, server: str, day: date, cover: tuple[float, float]) -> dict[str, Any] | None:
        """The manifest entry of a finished day with this coverage, else None."""
        entry = self.days.get(self.key(server, day))
        if entry is None or (entry["start"], entry["end"]) != cover:
            return None
        if entry.get("file") and not os.path.exists(os.path.join(self.dir, entry["file"])):
            return None
        return entry

    def write_day(
        self,
        server: str,
        day: date,
        cover: tuple[float, float],
        body: Callable[..., dict[str, tuple[int, int]]],
    ) -> str:
        """Write one day through `body(write, headers=...)`; returns the file written."""
        name = f"{_safe(server)}-{day.isoformat()}.{'part' if self.single else 'om'}"
        final = os.path.join(self.dir, name)
        tmp = os.path.join(self.dir, f".{name}.tmp")
        try:
            with open(tmp, "wb", buffering=_COPY) as f:
                offsets = body(f.write, headers=not self.single)
                if not self.single:
                    f.write(EOF)
            os.replace(tmp, final)
        except BaseException:
            _remove(tmp)
            raise
        entry = {"start": cover[0], "end": cover[1], "file": name, "offsets": offsets}
        self.days[self.key(server, day)] = entry
        self._save()
        return final

    def skip_day(self, server: str, day: date, cover: tuple[float, float], why: str) -> None:
        """Record a day that has nothing to write (before Rocket.Chat's history starts)."""
        self.days[self.key(server, day)] = {
            "start": cover[0],
            "end": cover[1],
            "file": None,
            "skipped": why,
        }
        self._save()

    def _save(self) -> None:
        path = os.path.join(self.dir, MANIFEST)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"format": FORMAT, "settings": self.settings, "days": self.days}, f)
        os.replace(tmp, path)

    def finish(self, keys: list[str]) -> str | None:
        """For a single-file output, join the days `keys` (in order) into it; the file."""
        if not self.single:
            return None
        parts = [self.days[k] for k in keys if self.days.get(k, {}).get("file")]
        tmp = self.path + ".tmp"
        try:
            with open(tmp, "wb", buffering=_COPY) as out:
                handles: dict[str, BinaryIO] = {}
                try:
                    for family in FAMILIES:
                        having = [p for p in parts if family in p["offsets"]]
                        if not having:
                            continue
                        out.write(header(family))
                        for p in having:
                            f = handles.get(p["file"])
                            if f is None:
                                f = open(os.path.join(self.dir, p["file"]), "rb")  # noqa: SIM115
                                handles[p["file"]] = f
                            start, end = p["offsets"][family]
                            _copy_range(f, out, start, end)
                    out.write(EOF)
                finally:
                    for f in handles.values():
                        f.close()
            os.replace(tmp, self.path)
        except BaseException:
            _remove(tmp)
            raise
        return self.path


def _copy_range(src: BinaryIO, dst: BinaryIO, start: int, end: int) -> None:
    src.seek(start)
    left = end - start
    while left > 0:
        chunk = src.read(min(_COPY, left))
        if not chunk:
            raise OSError(f"{src.name}: shorter than the manifest says; delete the output")
        dst.write(chunk)
        left -= len(chunk)


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
