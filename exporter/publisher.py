"""What the HTTP side serves: each server's latest health, last good snapshot and page part.

Poller threads call `update` (and `beat`, `stopped`); HTTP handlers call `page`, `views` and
`ready`. A server's part of the page is rendered by that server's poll, outside the lock, and
swapped in; the lock only guards swapping references, so a scrape never waits for a render
and one server's update never re-renders another's. Scrapes re-render a server's part only
when its state changed without a poll: its snapshot grew stale or its poller stalled.

The watchdog: a poller thread announces, before each step, by when it will be heard of again
(`beat`). One that misses its deadline, or whose thread ended (`stopped`), is shown as down
(`up` 0, /readyz 503, the landing page says why): a frozen `up == 1` cannot happen.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace

from exporter.exposition import ServerHealth, ServerView
from exporter.page import EMPTY_PAGE, JoinedPage, ServerPage, join_parts, render_server
from exporter.snapshot import ServerSnapshot


@dataclass(frozen=True)
class _Watch:
    deadline: float | None = None  # None: not watched (no poller thread runs for it yet)
    dead: str = ""  # why the poller thread ended, if it did


@dataclass(frozen=True)
class _Part:
    key: tuple  # what the part was rendered from: (health as shown, id of the snapshot or None)
    page: ServerPage
    snapshot: ServerSnapshot | None  # held so that the id in `key` cannot be reused


def fill_summary(health: ServerHealth) -> str:
    """ "3 of 8 days, ETA 240 s" (for /readyz and the landing page)."""
    text = f"{health.fill_days:.1f} of {health.fill_wanted} days".replace(".0 of", " of")
    if health.fill_eta is not None:
        text += f", ETA {health.fill_eta:.0f} s"
    return text


class Publisher:
    def __init__(self, servers: Sequence[str], max_staleness: float):
        self.max_staleness = max_staleness
        self._names = tuple(servers)
        self._lock = threading.Lock()
        self._health = {name: ServerHealth(server=name) for name in servers}
        self._snapshots: dict[str, ServerSnapshot] = {}
        self._watch = {name: _Watch() for name in servers}
        self._parts: dict[str, _Part] = {}
        self._render_locks = {name: threading.Lock() for name in servers}
        self._generation = 0  # bumped whenever a part changes
        self._joined_generation = -1
        self._page: JoinedPage = EMPTY_PAGE

    # ---- poller side ----------------------------------------------------------------------------

    def update(self, health: ServerHealth, snapshot: ServerSnapshot | None, now: float) -> None:
        """Record a poll's outcome; `snapshot` None keeps the previous good one."""
        # Rendered before it is kept: a snapshot that cannot be rendered is never stored, so
        # the next update (or scrape) still has the last good one.
        self._refresh([health.server], now, health, snapshot)

    def beat(self, server: str, deadline: float) -> None:
        """The server's poller is alive and will call again (or finish a poll) by `deadline`."""
        with self._lock:
            self._watch[server] = _Watch(deadline=deadline)

    def stopped(self, server: str, why: str) -> None:
        """The server's poller thread ended (a bug, or shutdown)."""
        with self._lock:
            self._watch[server] = replace(self._watch[server], dead=why)

    # ---- HTTP side ------------------------------------------------------------------------------

    def page(self, now: float, gzipped: bool = False) -> bytes:
        """The whole page as one byte string (the CLI's --once, tests, benchmarks)."""
        page = self.joined(now)
        return page.gzip_bytes() if gzipped else page.plain_bytes()

    def parts(self, now: float, tail: bytes, gzipped: bool = False) -> tuple[bytes, ...]:
        """The page with `tail` appended, as parts to send one after another (the web
        layer): the servers' parts are sent as they are, never joined into one copy."""
        page = self.joined(now)
        return page.gzip_with(tail) if gzipped else page.plain_with(tail)

    def joined(self, now: float) -> JoinedPage:
        changed = [name for name in self._names if self._part_key(name, now) != self._key(name)]
        if changed or self._joined_generation != self._generation:
            self._refresh(changed, now)
        with self._lock:
            return self._page

    def views(self, now: float) -> list[ServerView]:
        with self._lock:
            return [self._view_locked(name, now) for name in self._names]

    def ready(self, now: float) -> bool:
        return not self.waiting_for(now)

    def waiting_for(self, now: float) -> list[str]:
        """Why /readyz is not ready yet, one line per server; empty when ready.

        Ready means: every server had a successful poll and no poller is stalled or stopped.
        A server whose last poll failed after an earlier success stays ready (the old data is
        served until max_staleness); alerts, not readiness, report that.
        """
        out = []
        for view in self.views(now):
            h = view.health
            if h.stalled:
                out.append(f"{h.server}: {h.stalled}")
            elif h.last_success is None:
                if h.last_error:
                    why = f"first poll failed: {h.last_error}"
                else:
                    why = "first poll running"
                    if h.fill_wanted and h.fill_ratio < 1:
                        why += f", filling the history cache: {fill_summary(h)}"
                out.append(f"{h.server}: {why}")
        return out

    # ---- internals ------------------------------------------------------------------------------

    def _stall(self, name: str, now: float) -> str:
        watch = self._watch[name]
        if watch.dead:
            return f"poller stopped: {watch.dead}"
        if watch.deadline is not None and now > watch.deadline:
            late = now - watch.deadline
            return f"poller stalled: {late:.0f} s past its deadline, nothing heard from it"
        return ""

    def _view_locked(
        self,
        name: str,
        now: float,
        health: ServerHealth | None = None,
        snapshot: ServerSnapshot | None = None,
    ) -> ServerView:
        """What this server shows at `now`: its stored state, or a new `health`/`snapshot`."""
        health = health or self._health[name]
        stall = self._stall(name, now)
        if stall:
            # `up` shows 0 even before a first poll finished: a fill that froze is a failure.
            health = replace(health, up=False, last_poll=health.last_poll or now, stalled=stall)
        snap = snapshot or self._snapshots.get(name)
        if snap is not None and now - snap.taken_at > self.max_staleness:
            snap = None
        return ServerView(health, snap)

    def _part_key(self, name: str, now: float) -> tuple:
        with self._lock:
            return self._part_key_locked(name, now)

    def _part_key_locked(self, name: str, now: float) -> tuple:
        view = self._view_locked(name, now)
        return (view.health, None if view.snapshot is None else id(view.snapshot))

    def _key(self, name: str) -> tuple | None:
        part = self._parts.get(name)
        return None if part is None else part.key

    def _refresh(
        self,
        names: Sequence[str],
        now: float,
        health: ServerHealth | None = None,
        snapshot: ServerSnapshot | None = None,
    ) -> None:
        """Re-render these servers' parts (outside the publisher's lock), then re-join.

        `health` and `snapshot` (one server only) are a poll's new state, stored together with
        the part rendered from them, so a scrape never sees the one without the other. A
        server's renders are serialised by its own lock: a scrape re-rendering a stale part
        cannot overwrite the part of an update that began after it read the state.
        """
        for name in names:
            with self._render_locks[name]:
                with self._lock:
                    view = self._view_locked(name, now, health, snapshot)
                key = (view.health, None if view.snapshot is None else id(view.snapshot))
                previous = self._parts.get(name)
                # The expensive part, the publisher's lock not held; the previous part lends
                # what did not change (everything but health, when the snapshot is the same).
                page = render_server(
                    view,
                    previous.page if previous is not None else None,
                    previous is not None and previous.snapshot is view.snapshot,
                )
                with self._lock:
                    if health is not None:
                        self._health[name] = health
                    if snapshot is not None:
                        self._snapshots[name] = snapshot
                    if health is not None or snapshot is not None:
                        key = self._part_key_locked(name, now)
                    self._parts[name] = _Part(key, page, view.snapshot)
                    self._generation += 1
        with self._lock:
            generation = self._generation
            parts = [self._parts[n].page for n in self._names if n in self._parts]
        joined = join_parts(parts)
        with self._lock:
            if generation > self._joined_generation:
                self._page = joined
                self._joined_generation = generation
