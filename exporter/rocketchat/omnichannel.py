"""Departments, the queue and agent load, fetched alongside availability without risking it.

Departments change rarely: they are fetched on the first poll and then every
`refresh_polls` polls (memberships come with the live status: `departments` on each agent of
livechat/users/agent). The queue (livechat/inquiries.list) and the load (livechat/queue) are
fetched every poll. Each route has its own rate-limit budget in Rocket.Chat, and each is one
request per poll with count=0.

A route that fails (403 without the permission, 404 on a server without it, anything else)
makes its part "unknown" (None) for that poll: the exporter says so rather than publishing
zero waiting chats, and the availability part of the poll goes on. The client logs one warning
per failure class and one line when the route recovers. A server's departments, once read,
are kept across a failed refresh (a department renamed or deleted shows up at the next good
one).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Protocol, runtime_checkable

from exporter.config.model import Departments, ServerConfig
from exporter.model import Department, Load, Omnichannel, Queued
from exporter.rocketchat.errors import RocketChatError

log = logging.getLogger("exporter.client")

DEFAULT_REFRESH_POLLS = 10


@runtime_checkable
class OmnichannelClient(Protocol):
    def fetch_departments(self) -> tuple[Department, ...]: ...

    def fetch_queue(self) -> tuple[tuple[Queued, ...], int]: ...

    def fetch_load(self) -> tuple[Load, ...]: ...


class OmnichannelFeed:
    """One server's departments/queue/load. Not thread-safe: the poller thread owns it."""

    def __init__(
        self,
        client: object,
        refresh_polls: int = DEFAULT_REFRESH_POLLS,
        select: str | tuple[str, ...] = "all",
        server: str = "",
        rule_names: tuple[str, ...] = (),
    ):
        if not isinstance(client, OmnichannelClient):
            raise TypeError(f"{type(client).__name__} cannot fetch departments or the queue")
        self._client = client
        self._refresh = max(1, refresh_polls)
        self._select = select
        self._server = server
        self._rule_names = rule_names  # departments named by staffing rules
        self._polls = 0
        self._departments: tuple[Department, ...] | None = None
        self._missing: tuple[str, ...] = ()

    @classmethod
    def for_config(
        cls, client: object, cfg: Departments, server: ServerConfig
    ) -> OmnichannelFeed | None:
        """The feed for `cfg`, or None when departments are off (nothing extra is asked)."""
        if not cfg.enabled:
            return None
        rules = tuple(name for name, _ in server.department_staffing)
        return cls(client, cfg.refresh_polls, cfg.select, server.name, rules)

    def _check_names(self, departments: tuple[Department, ...]) -> None:
        """Warn once per change about configured names that match no department."""
        wanted = () if isinstance(self._select, str) else self._select
        wanted += tuple(n for n in self._rule_names if n not in wanted and n != "(none)")
        known = {d.id for d in departments} | {d.name for d in departments}
        missing = tuple(n for n in wanted if n not in known)
        if missing != self._missing:
            self._missing = missing
            if missing:
                names = ", ".join(sorted({d.name for d in departments})) or "none"
                log.warning(
                    f"departments: {', '.join(missing)} match no department on Rocket.Chat "
                    f"(existing: {names}); fix the departments list or the staffing rules "
                    "naming them in the config",
                    extra={"server": self._server, "endpoint": "departments"},
                )

    def fetch(self) -> Omnichannel:
        """This poll's departments, queue and load; each None where it could not be read."""
        if self._polls % self._refresh == 0 or self._departments is None:
            try:
                self._departments = self._client.fetch_departments()
                self._check_names(self._departments)
            except RocketChatError as exc:
                if exc.status in (403, 404):
                    self._departments = None  # refused: unknown, not "the last we saw"
        self._polls += 1
        queue: tuple[Queued, ...] | None = None
        total: int | None = None
        # A failure is logged once by the client and exported as unknown.
        with contextlib.suppress(RocketChatError):
            queue, total = self._client.fetch_queue()
        load: tuple[Load, ...] | None = None
        with contextlib.suppress(RocketChatError):
            load = self._client.fetch_load()
        return Omnichannel(self._departments, queue, total, load)
