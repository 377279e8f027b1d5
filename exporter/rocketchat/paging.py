"""Every item of a Rocket.Chat list route, in as few requests as the server allows.

Rocket.Chat's `getPaginationItems` treats `count=0` as "no limit" while the admin setting
`API_Allow_Infinite_Count` is on (its default), so one request returns a whole day of history,
or every agent. Each route is asked that way first and the answer checked against its `total`:

- all there: the route stays in mode "all" (one request per fetch, whatever the team size);
- capped (the setting is off, the server applied its default page size instead): the rest is
  fetched in pages of `API_Upper_Count_Limit` (100) and the route stays in mode "pages";
- `count`/`offset` rejected (400 `must NOT have additional properties`, the history route
  before Rocket.Chat 7.x added them to its schema): one request without them, mode "none",
  and the server's default page size is all there is (the caller reports what is missing).

The mode is remembered per route, and "pages"/"none" are re-probed every REPROBE_EVERY fetches
(an admin may turn the setting on, or upgrade Rocket.Chat). A server known (from its version)
to reject `count` on a route is never probed there: every request stays valid under its
published query schema.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from exporter.rocketchat.errors import RocketChatError

log = logging.getLogger("exporter.client")

PAGE_SIZE = 100  # Rocket.Chat's default API_Upper_Count_Limit
MAX_PAGES = 1000  # a server that keeps answering pages cannot hold a poll forever
REPROBE_EVERY = 30  # fetches between re-tries of count=0 while a route is paged or refused

Mode = Literal["all", "pages", "none"]


class Page(Protocol):
    received: int  # items on this page, usable or not
    total: int | None  # the server's `total`, None when absent


@dataclass(frozen=True)
class Fetched:
    pages: list[Any]
    mode: Mode  # how this fetch asked
    requests: int

    @property
    def complete(self) -> bool:
        """Every item the server counted could be asked for ("none" cannot page further)."""
        return self.mode != "none"


Get = Callable[[str, dict[str, Any], bool], object]  # (endpoint, query, bulk) -> JSON
Progress = Callable[[str, int, "int | None"], None]  # (endpoint, received so far, total)


class Pager:
    def __init__(self, server: str, get: Get, on_page: Progress | None = None):
        self._server = server
        self._get = get
        self._on_page = on_page
        self._mode: dict[str, Mode] = {}
        self._since_fallback: dict[str, int] = {}
        self._never_count: set[str] = set()

    def never_count(self, endpoint: str, never: bool = True) -> None:
        """This server's query schema for `endpoint` has no `count`/`offset`: do not send them."""
        if never:
            self._never_count.add(endpoint)
            self._mode[endpoint] = "none"
        else:
            self._never_count.discard(endpoint)

    def mode(self, endpoint: str) -> Mode:
        return self._mode.get(endpoint, "all")

    def fetch(
        self, endpoint: str, params: dict[str, Any], parse: Callable[[object], Any]
    ) -> Fetched:
        mode = self._mode_for(endpoint)
        if mode == "all":
            try:
                first = parse(self._get(endpoint, {**params, "count": 0}, True))
            except RocketChatError as exc:
                if exc.reason != "pagination":
                    raise
                self._set(endpoint, "none", "rejects count/offset; asking without them", debug=True)
            else:
                if first.total is None or first.received >= first.total:
                    self._set(endpoint, "all", "returns everything with count=0 again")
                    return Fetched([first], "all", 1)
                self._set(
                    endpoint,
                    "pages",
                    f"caps count=0 at {first.received} of {first.total} "
                    "(API_Allow_Infinite_Count off); fetching pages of "
                    f"{PAGE_SIZE}: turn Administration > Settings > General > REST API "
                    '"Allow infinite count" on for one request per poll',
                )
                return self._pages(endpoint, params, parse, [first])
        if self.mode(endpoint) == "pages":
            try:
                return self._pages(endpoint, params, parse, [])
            except RocketChatError as exc:
                if exc.reason != "pagination":
                    raise
                self._set(endpoint, "none", "rejects count/offset; asking without them", debug=True)
        return Fetched([parse(self._get(endpoint, dict(params), False))], "none", 1)

    def _pages(
        self, endpoint: str, params: dict[str, Any], parse: Callable[[object], Any], pages: list
    ) -> Fetched:
        requests = len(pages)
        offset = sum(p.received for p in pages)
        while len(pages) < MAX_PAGES:
            query = {**params, "count": PAGE_SIZE, "offset": offset}
            page = parse(self._get(endpoint, query, False))
            requests += 1
            pages.append(page)
            offset += page.received
            if self._on_page is not None:
                self._on_page(endpoint, offset, page.total)
            more = offset < page.total if page.total is not None else page.received >= PAGE_SIZE
            if not more or page.received == 0:
                break
        return Fetched(pages, "pages", requests)

    def _mode_for(self, endpoint: str) -> Mode:
        mode = self.mode(endpoint)
        if mode == "all" or endpoint in self._never_count:
            return mode
        n = self._since_fallback.get(endpoint, 0) + 1
        self._since_fallback[endpoint] = n
        return "all" if n % REPROBE_EVERY == 0 else mode

    def _set(self, endpoint: str, mode: Mode, why: str, debug: bool = False) -> None:
        if self.mode(endpoint) == mode:
            return
        self._mode[endpoint] = mode
        self._since_fallback[endpoint] = 0
        # "none" only matters if agents go missing, and the client warns about that itself.
        (log.debug if debug else log.info)(
            f"Rocket.Chat {why}",
            extra={"server": self._server, "endpoint": endpoint, "paging": mode},
        )
