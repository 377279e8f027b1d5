"""A faithful Rocket.Chat simulator for tests, benchmarks and the `demo`/`simulate` commands.

Production code never imports this package (except the `demo` command).

It serves, over real HTTP, Rocket.Chat's routes as docs/rocketchat-api.md and
docs/rocketchat.md describe them (the real routes, query schemas and quirks):

- GET /api/v1/livechat/analytics/agents/available-for-service-history  (route name "history")
- GET /api/v1/livechat/users/agent                                      ("agents")
- GET /api/v1/livechat/analytics/dashboards/charts/agents-status        ("agents_status")
- GET /api/info                                                          ("info", no auth)

Usage::

    from exporter.simulator import Simulator, SimulatorConfig, ManualClock, serve

    clock = ManualClock(1_700_000_000.0)          # or omit clock= for real time
    sim = Simulator(SimulatorConfig(agents=50, seed=1, timezone="UTC"), clock=clock)
    server = serve(sim, host="127.0.0.1", port=0)  # background thread
    server.url                                     # "http://127.0.0.1:PORT"
    # headers: X-User-Id: sim.config.user_id, X-Auth-Token: sim.config.auth_token
    server.stop()                                  # fast; joins the thread

`SimulatorConfig` (frozen; see its field comments): agents, seed, timezone, pagination
("accepted": history takes offset/count like 7.9+; "rejected": 400 `must NOT have additional
properties [invalid-params]` like 6.x-7.0, server page size applies), licence, unlicensed
("new": 400 enterprise body; "old": 404), rate_limit (per window, 0 = off), rate_window,
rate_limit_bypass, days, intervals_per_day, off_day_rate, double_stop_rate, user_id,
auth_token, version, default_count, upper_count_limit, allow_infinite_count, auth_style
("new"/"old" 401 body), forbidden_style ("permissions"/"unauthorized" 403 body), forbidden
(route names answering 403), agents_status_cache (seconds the chart is memoized, like
Rocket.Chat's 5 s `mem`), open_documents (see Semantics).

Runtime switches (thread-safe): `sim.licence = False`, `sim.forbid("history")`,
`sim.forbid("agents", False)`, `sim.revoke_token()`, `sim.set_credentials(uid, token)`,
`sim.set_rate_limit(limit, window)`, and `sim.faults`:
`faults.latency = 0.2`, `faults.error_status = 503`, `faults.inject(kind, times=1, route=None)`,
`faults.set_rate(kind, p, route=None)` with kind in error|html|drop|drop_mid_body|truncate,
`faults.set_drift(*kinds)` with kind in missing_keys|null_stopped_at|naive_dates|extra_fields|
short_total|double_stop, `faults.clear()`.

Counters: `sim.requests` is a Counter copy keyed (route name, status) - status an int, or
"dropped"; unknown paths count as "unknown". `sim.request_total(route=None)`,
`sim.reset_requests()`.

Data: generated agents (seeded) work shifts of about `intervals_per_day` sessions with breaks,
some crossing local midnight, from `days` days before the start day onwards. Scripted mode for
hand-computed cases: `SimulatorConfig(agents=0)` or `sim.clear()`, then
`sim.add_agent(username, name=None, id=None, email="")`, `sim.set_agents([...])`,
`sim.add_session(username, start, end=None, presence="online", double_stop=0.0)` (unix
seconds or aware datetimes; end None = still open), `sim.close_session(username, end)`,
`sim.remove_agent(username)` (deleted user: vanishes from history too),
`sim.set_live(username, status=..., status_livechat=...)` (override), `sim.clear_generated()`.

Semantics (as Rocket.Chat records them): an open session is invisible in history (no time, no
entry) until it closes, but the day's document exists from the moment it started, so an agent
whose only session today is still open is listed with availableTimeInSeconds 0 and, with
fullReport=true, `"serviceHistory": null` (open_documents=False: listed only once something
closed). A session open at local midnight is recorded as
[start, 23:59:59.000] on its day and [00:00:00.000, end] on the next. Per-session seconds are
truncated (moment diff). A range's availableTimeInSeconds sums all matched days, its
serviceHistory is the earliest matched day's only. Live status: during a session
statusLivechat "available" with presence online/away/busy; on a break online/away and
"not-available"; off shift "offline" (some agents keep "available" while offline).

Ground truth for benchmarks: `sim.sessions(username, since, until)` (real spans, seconds),
`sim.live(username)`, `sim.agents`.

CLI: `exporter.simulator.cli.main(["--listen", "127.0.0.1:3000", "--agents", "50"])`.
"""

from .clock import Clock, ManualClock, SystemClock
from .core import (
    ROUTE_AGENTS,
    ROUTE_AGENTS_STATUS,
    ROUTE_HISTORY,
    ROUTE_INFO,
    ROUTES,
    Simulator,
    SimulatorConfig,
)
from .data import Agent
from .faults import DRIFTS, TRANSPORT_FAULTS, Faults
from .server import SimulatorServer, serve

__all__ = [
    "DRIFTS",
    "ROUTES",
    "ROUTE_AGENTS",
    "ROUTE_AGENTS_STATUS",
    "ROUTE_HISTORY",
    "ROUTE_INFO",
    "TRANSPORT_FAULTS",
    "Agent",
    "Clock",
    "Faults",
    "ManualClock",
    "Simulator",
    "SimulatorConfig",
    "SimulatorServer",
    "SystemClock",
    "serve",
]
