"""Every request the client sends, and every verdict the simulator gives, against Rocket.Chat's
published query schemas (npm @rocket.chat/rest-typings 7.0.0 and 7.10.0, dist/v1/omnichannel.js,
compiled by their own ajv with coerceTypes: true). tests/schemas/validate.mjs runs the real
validators under node; `npm ci` installs them once per session when they are missing.

(a) The real RocketChatClient polls the real simulator over HTTP; the simulator records every
    request; each query is validated under the version the simulator emulates. Requests that
    fail validation must be the client's count/offset probes on a history route that rejects
    them, answered 400 invalid-params, and each followed by the same request without them.
(b) A table of queries per route and version: the schema's verdict is pinned (docs/
    rocketchat-api.md relies on it), and for the routes the simulator serves its answer must
    agree: 400 `<ajv message> [invalid-params]` exactly when the schema rejects.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest

from exporter.config.model import Secret, ServerConfig, ServiceLevel
from exporter.rocketchat.client import RocketChatClient
from exporter.rocketchat.omnichannel import OmnichannelFeed
from exporter.rocketchat.paging import REPROBE_EVERY as PAGING_REPROBE_EVERY
from exporter.servicelevel_feed import RoomsFeed
from exporter.simulator import ManualClock, Simulator, SimulatorConfig, serve
from exporter.simulator.core import Reply

SCHEMAS = Path(__file__).parent / "schemas"
ALIASES = ("rest-typings-7.0.0", "rest-typings-7.10.0")
V70, V710 = "7.0.0", "7.10.0"
EMULATES = {"rejected": V70, "accepted": V710}  # SimulatorConfig.pagination -> version
USER_ID = "Xq7pL2mN9vB4cR8tY"
TOKEN = "kJ3hG5fD7sA9pO1iU2yT4rE6wQ8zX0cV2bN4mL6kJ8h"
TZ = "America/New_York"
T0 = datetime(2024, 3, 5, 10, 0, tzinfo=ZoneInfo(TZ)).timestamp()
DAY = date(2024, 3, 5)
API = "/api/v1/"
HISTORY = "livechat/analytics/agents/available-for-service-history"
USERS = "livechat/users/agent"
CHART = "livechat/analytics/dashboards/charts/agents-status"
INQUIRIES = "livechat/inquiries.list"
DEPARTMENT = "livechat/department"
QUEUE = "livechat/queue"
ROOMS = "livechat/rooms"
SIMULATED = (HISTORY, USERS, CHART, INQUIRIES, DEPARTMENT, QUEUE, ROOMS)


# ---------------------------------------------------------------- the node side


def _installed_versions(lock: Path) -> dict[str, str] | None:
    try:
        packages = json.loads(lock.read_text())["packages"]
    except (OSError, ValueError, KeyError):
        return None
    return {a: packages.get(f"node_modules/{a}", {}).get("version") for a in ALIASES}


def _npm_ci() -> None:
    """`npm ci` when node_modules does not hold what package-lock.json pins (once; locked)."""
    wanted = _installed_versions(SCHEMAS / "package-lock.json")
    assert wanted and all(wanted.values()), "tests/schemas/package-lock.json is unreadable"
    digest = hashlib.sha256(str(SCHEMAS.resolve()).encode()).hexdigest()[:12]
    lock_path = Path(tempfile.gettempdir()) / f"rest-schemas-{digest}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed_versions(SCHEMAS / "node_modules" / ".package-lock.json") == wanted:
            return
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail(
                "node is installed but npm is not, so tests/schemas cannot be installed: "
                "apt-get install -y --no-install-recommends npm (or run .ci/run)"
            )
        cmd = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]
        try:
            done = subprocess.run(
                cmd, cwd=SCHEMAS, capture_output=True, text=True, timeout=600, check=False
            )
        except subprocess.TimeoutExpired:
            pytest.fail("npm ci in tests/schemas took over 600 s; is the npm registry reachable?")
        if done.returncode != 0:
            pytest.fail(
                f"npm ci in tests/schemas failed ({done.returncode}); run it there by hand:\n"
                f"{done.stderr[-2000:]}"
            )


@dataclass(frozen=True)
class Verdict:
    valid: bool
    message: str  # ajv's messages joined as ApiClass does ("" when valid)
    validator: str


class Schemas:
    """Rocket.Chat's compiled validators, one node process per batch."""

    def __init__(self, node: str):
        self.node = node

    def check(self, items: list[tuple[str, str, str]]) -> list[Verdict]:
        """[(version, route, query string)] -> verdicts, in order."""
        if not items:
            return []
        lines = "".join(
            json.dumps({"version": v, "route": r, "query": q}) + "\n" for v, r, q in items
        )
        done = subprocess.run(
            [self.node, "validate.mjs"],
            cwd=SCHEMAS,
            input=lines,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"validate.mjs failed:\n{done.stderr[-2000:]}"
        out = [json.loads(line) for line in done.stdout.splitlines()]
        assert len(out) == len(items), done.stderr[-2000:]
        verdicts = []
        for item, o in zip(items, out, strict=True):
            assert o.get("valid") is not None, f"{item}: {o.get('error')}"
            verdicts.append(Verdict(o["valid"], o["message"], o["validator"]))
        return verdicts


@pytest.fixture(scope="session")
def schemas() -> Schemas:
    node = shutil.which("node")
    if node is None:
        pytest.skip(
            "node is not installed: Rocket.Chat's schema validators need it "
            "(apt-get install -y --no-install-recommends nodejs npm, as .ci/run does)"
        )
    _npm_ci()
    return Schemas(node)


# ---------------------------------------------------------------- the simulator side


@dataclass(frozen=True)
class Sent:
    route: str  # below /api/v1/, or "/api/info"
    query: str
    status: int | None
    body: dict[str, Any]

    @property
    def invalid_params(self) -> bool:
        return self.status == 400 and self.body.get("errorType") == "invalid-params"

    @property
    def params(self) -> set[str]:
        return {p.partition("=")[0] for p in self.query.split("&") if p}


class RecordingSimulator(Simulator):
    """The simulator, noting each request it answers (the HTTP server calls handle())."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.sent: list[Sent] = []

    def handle(
        self, method: str, target: str, headers: dict[str, str], client: str = "127.0.0.1"
    ) -> Reply:
        reply = super().handle(method, target, headers, client)
        url = urlsplit(target)
        route = url.path[len(API) :] if url.path.startswith(API) else url.path
        try:
            body = json.loads(reply.body) if reply.status else {}
        except ValueError:
            body = {}
        self.sent.append(Sent(route, url.query, reply.status, body))
        return reply


@pytest.fixture
def simulator() -> Iterator:
    servers = []

    def start(**config: Any) -> tuple[RecordingSimulator, str]:
        settings: dict[str, Any] = {
            "agents": 0,
            "seed": 3,
            "timezone": TZ,
            "user_id": USER_ID,
            "auth_token": TOKEN,
            "rate_limit": 0,
        }
        settings.update(config)
        sim = RecordingSimulator(SimulatorConfig(**settings), clock=ManualClock(T0))
        server = serve(sim, host="127.0.0.1", port=0)
        servers.append(server)
        return sim, server.url

    yield start
    for server in servers:
        server.stop()


# ---------------------------------------------------------------- (a) the client's requests


def _poll_like_the_exporter(url: str, sim: Simulator, *, ask_version: bool = True) -> None:
    clock = sim.clock
    client = RocketChatClient(
        ServerConfig(
            name="sim",
            url=url,
            user_id=Secret(value=USER_ID, key="servers[0].user_id"),
            auth_token=Secret(value=TOKEN, key="servers[0].auth_token"),
            timezone=TZ,
            timeout=5.0,
        ),
        sleep=clock.advance,  # type: ignore[attr-defined]
        clock=clock.now,
    )
    try:
        if ask_version:  # as the poller does at start; a failed /api/info leaves it unknown
            client.fetch_info()
        # An initial fill of a few days, then enough refetches of today to reach a re-probe of
        # count/offset on a server that rejected them.
        for back in range(3, 0, -1):
            client.fetch_history_day(DAY - timedelta(days=back))
        for _ in range(PAGING_REPROBE_EVERY + 1):
            client.fetch_history_day(DAY)
        client.fetch_live_status()
        # departments on: the department list, the queue (sorted) and the load
        dep = sim.omni.add_department("Sales")
        sim.omni.enqueue(T0 - 60, dep)
        feed = OmnichannelFeed(client, refresh_polls=2, select=("Sales",))
        for _ in range(3):
            feed.fetch()
        # service_level on: rooms closed since the last poll (the first poll only seeds)
        sim.rooms.add(T0 - 300, department=dep, wait=30, first_response=5, duration=200)
        rooms = RoomsFeed(client, ServiceLevel(enabled=True))
        for _ in range(2):
            rooms.fetch(clock.now())
        sim.forbid("agents")  # the per-agent route refused: the chart answers instead
        client.fetch_live_status()
    finally:
        client.close()


def _report(version: str, sent: list[Sent], verdicts: list[Verdict]) -> str:
    lines = [f"rest-typings {version}: {len(sent)} requests"]
    tally: Counter[tuple[str, bool]] = Counter()
    examples: dict[tuple[str, bool], str] = {}
    for s, v in zip(sent, verdicts, strict=True):
        tally[(s.route, v.valid)] += 1
        examples.setdefault((s.route, v.valid), s.query)
    for (route, valid), n in sorted(tally.items()):
        verdict = "valid" if valid else "INVALID"
        lines.append(f"  {route}: {n} {verdict}, e.g. ?{examples[(route, valid)]}")
    return "\n".join(lines)


@pytest.mark.parametrize(
    ("pagination", "ask_version"), [("accepted", True), ("rejected", True), ("rejected", False)]
)
def test_client_requests_are_valid_under_the_emulated_schema(
    schemas, simulator, pagination, ask_version
):
    sim, url = simulator(agents=130, days=4, pagination=pagination)
    version = sim.config.effective_version
    assert version == EMULATES[pagination]
    _poll_like_the_exporter(url, sim, ask_version=ask_version)

    info = [s for s in sim.sent if s.route == "/api/info"]
    sent = [s for s in sim.sent if s.route != "/api/info"]
    assert all(s.query == "" for s in info)  # API.default route: no query schema
    assert bool(info) == ask_version
    assert {s.route for s in sent} == set(SIMULATED), "the scenario must reach every route"
    verdicts = schemas.check([(version, s.route, s.query) for s in sent])
    print("\n" + _report(version, sent, verdicts))

    for s, v in zip(sent, verdicts, strict=True):
        # The simulator validated exactly as Rocket.Chat would have.
        assert s.invalid_params == (not v.valid), (s, v)
        if not v.valid:
            assert s.body["error"] == f"{v.message} [invalid-params]"

    rejected = [i for i, v in enumerate(verdicts) if not v.valid]
    if version == V710 or ask_version:
        # A known version whose history schema has no count/offset is never sent them.
        assert rejected == []
        return
    # 7.0.0 of unknown version: only the history route's count probes fail, each followed by
    # the fallback.
    assert rejected, "the client never probed count/offset on a 7.0.0 history route"
    for i in rejected:
        probe = sent[i]
        assert probe.route == HISTORY and probe.params & {"count", "offset"}, probe
        assert probe.body["error"] == "must NOT have additional properties [invalid-params]"
        retry = sent[i + 1]
        assert retry.route == HISTORY and verdicts[i + 1].valid, retry
        assert retry.params == probe.params - {"count", "offset", "sort"}
    # The first fetch probes, then one re-probe every PAGING_REPROBE_EVERY fetches.
    fetches = 3 + PAGING_REPROBE_EVERY + 1
    assert len(rejected) == 1 + (fetches - 1) // PAGING_REPROBE_EVERY


# ---------------------------------------------------------------- (b) a table per route

H_BASE = [("start", "2024-03-05T05:00:00.000Z"), ("end", "2024-03-06T04:59:59.999Z")]
SORT_USERNAME = ("sort", json.dumps({"username": 1}))
Q = list[tuple[str, str]]

# (route, query, {version: the schema accepts it}); the simulator must agree on SIMULATED.
TABLE: list[tuple[str, Q, dict[str, bool]]] = [
    (HISTORY, H_BASE, {V70: True, V710: True}),
    (HISTORY, [*H_BASE, ("fullReport", "true")], {V70: True, V710: True}),
    (HISTORY, [*H_BASE, ("fullReport", "")], {V70: True, V710: True}),
    (HISTORY, [*H_BASE, ("count", "0")], {V70: False, V710: True}),
    (HISTORY, [*H_BASE, ("count", "0"), ("offset", "0")], {V70: False, V710: True}),
    (HISTORY, [*H_BASE, ("count", "100"), ("offset", "200")], {V70: False, V710: True}),
    (HISTORY, [*H_BASE, ("offset", "0")], {V70: False, V710: True}),
    (HISTORY, [*H_BASE, SORT_USERNAME], {V70: False, V710: True}),
    (HISTORY, [*H_BASE, ("count", "-1")], {V70: False, V710: True}),  # no minimum
    (HISTORY, [*H_BASE, ("count", "1e2")], {V70: False, V710: True}),
    (HISTORY, [*H_BASE, ("count", "0x10")], {V70: False, V710: True}),
    (HISTORY, [*H_BASE, ("count", " 5 ")], {V70: False, V710: True}),
    (HISTORY, [*H_BASE, ("count", "Infinity")], {V70: False, V710: True}),
    (HISTORY, [*H_BASE, ("count", "")], {V70: False, V710: False}),  # not nullable
    (HISTORY, [*H_BASE, ("count", "abc")], {V70: False, V710: False}),
    (HISTORY, [*H_BASE, ("count", "1"), ("count", "2")], {V70: False, V710: False}),
    (HISTORY, [*H_BASE, ("foo", "1")], {V70: False, V710: False}),
    (HISTORY, H_BASE[:1], {V70: False, V710: False}),
    (HISTORY, [*H_BASE, ("start", "2024-03-06")], {V70: False, V710: False}),
    (USERS, [], {V70: True, V710: True}),
    (USERS, [("count", "0")], {V70: True, V710: True}),
    (USERS, [("count", "0"), ("offset", "0")], {V70: True, V710: True}),
    (USERS, [("count", "100"), ("offset", "100"), SORT_USERNAME], {V70: True, V710: True}),
    (USERS, [("count", "-1")], {V70: True, V710: True}),
    (USERS, [("count", "")], {V70: True, V710: True}),  # nullable: "" is null
    (USERS, [("count", "abc")], {V70: False, V710: False}),
    (USERS, [("onlyAvailable", "true"), ("showIdleAgents", "false")], {V70: True, V710: True}),
    (USERS, [("onlyAvailable", "")], {V70: True, V710: True}),
    (USERS, [("onlyAvailable", "1")], {V70: False, V710: False}),
    (USERS, [("text", "ali"), ("excludeId", "x"), ("fields", "{}")], {V70: True, V710: True}),
    (USERS, [("foo", "1")], {V70: False, V710: False}),
    (USERS, [("status", "online")], {V70: False, V710: False}),
    (CHART, [], {V70: True, V710: True}),
    (CHART, [("departmentId", "d1")], {V70: True, V710: True}),
    (CHART, H_BASE, {V70: True, V710: True}),  # additionalProperties: true
    (CHART, [("count", "0")], {V70: True, V710: True}),
    (CHART, [("departmentId", "a"), ("departmentId", "b")], {V70: False, V710: False}),
    (INQUIRIES, [], {V70: True, V710: True}),
    (INQUIRIES, [("count", "0"), ("offset", "0")], {V70: True, V710: True}),
    (INQUIRIES, [("department", "d1"), ("sort", '{"ts":1}')], {V70: True, V710: True}),
    (INQUIRIES, [("count", "abc")], {V70: False, V710: False}),
    (INQUIRIES, [("status", "queued")], {V70: False, V710: False}),
    (INQUIRIES, [("count", "0"), ("sort", '{"ts":1}')], {V70: True, V710: True}),  # the client's
    (INQUIRIES, [("count", "")], {V70: True, V710: True}),
    (INQUIRIES, [("department", "a"), ("department", "b")], {V70: False, V710: False}),
    (DEPARTMENT, [], {V70: True, V710: True}),
    (DEPARTMENT, [("count", "0"), ("offset", "0")], {V70: True, V710: True}),
    (DEPARTMENT, [("enabled", "true"), ("showArchived", "false")], {V70: True, V710: True}),
    (DEPARTMENT, [("onlyMyDepartments", "yes")], {V70: False, V710: False}),
    (DEPARTMENT, [("foo", "1")], {V70: False, V710: False}),
    (DEPARTMENT, [("onlyMyDepartments", "true")], {V70: True, V710: True}),
    (DEPARTMENT, [("count", "abc")], {V70: False, V710: False}),
    (DEPARTMENT, [("text", "sa"), ("excludeDepartmentId", "d1")], {V70: True, V710: True}),
    (QUEUE, [], {V70: True, V710: True}),
    (QUEUE, [("count", "0"), ("offset", "0")], {V70: True, V710: True}),
    (QUEUE, [("includeOfflineAgents", "true"), ("departmentId", "d")], {V70: True, V710: True}),
    (QUEUE, [("foo", "1")], {V70: False, V710: False}),
    (QUEUE, [("agentId", "a"), ("sort", '{"chats":-1}')], {V70: True, V710: True}),
    (QUEUE, [("count", "x")], {V70: False, V710: False}),
    (QUEUE, [("includeOfflineAgents", "1")], {V70: True, V710: True}),  # a string, any value
    (ROOMS, [], {V70: True, V710: True}),
    (ROOMS, [("count", "0"), ("offset", "0")], {V70: True, V710: True}),
    (
        ROOMS,
        [("open", "true"), ("closedAt", '{"start":"2024-03-05T00:00:00Z"}')],
        {V70: True, V710: True},
    ),
    (ROOMS, [("departmentId", "a"), ("departmentId", "b")], {V70: False, V710: True}),
    (ROOMS, [("units", "u1"), ("units", "u2")], {V70: False, V710: True}),
    (ROOMS, [("units", "u1")], {V70: False, V710: False}),  # coerceTypes does not make arrays
    (ROOMS, [("foo", "1")], {V70: False, V710: False}),
    # the client's query (service_level): closedAt from a start, sorted, count=0
    (
        ROOMS,
        [
            ("closedAt", '{"start":"2024-03-05T14:50:00.000Z"}'),
            ("sort", '{"closedAt":1}'),
            ("count", "0"),
        ],
        {V70: True, V710: True},
    ),
    (
        ROOMS,
        [
            ("closedAt", '{"start":"2024-03-05T14:50:00.000Z"}'),
            ("count", "100"),
            ("offset", "100"),
            ("sort", '{"closedAt":1}'),
        ],
        {V70: True, V710: True},
    ),  # fmt: skip
    (ROOMS, [("closedAt", "")], {V70: True, V710: True}),  # nullable
    (ROOMS, [("departmentId", "d1"), ("open", "false")], {V70: True, V710: True}),
    (ROOMS, [("open", "1")], {V70: True, V710: True}),  # a string: accepted, then ignored
    (ROOMS, [("agents", "a")], {V70: False, V710: False}),  # an array, given once
    (ROOMS, [("agents", "a"), ("agents", "b")], {V70: True, V710: True}),
    (ROOMS, [("count", "abc")], {V70: False, V710: False}),
    (ROOMS, [("fields", '{"v":0}'), ("queued", "true")], {V70: True, V710: True}),
    (ROOMS, [("departmentId", "")], {V70: True, V710: True}),
]


def _qs(query: Q) -> str:
    return urlencode(query, quote_via=quote)


def test_schema_verdicts_are_as_documented(schemas):
    items = [(v, route, _qs(q)) for route, q, want in TABLE for v in want]
    wanted = [want[v] for _, _, want in TABLE for v in want]
    verdicts = schemas.check(items)
    wrong = [
        f"{v} {route}?{qs}: schema says {got.valid} ({got.message or 'ok'})"
        for (v, route, qs), got, want in zip(items, verdicts, wanted, strict=True)
        if got.valid != want
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("pagination", ["accepted", "rejected"])
def test_simulator_validates_like_the_schema(schemas, simulator, pagination):
    sim, url = simulator(agents=3, pagination=pagination)
    version = sim.config.effective_version
    rows = [(route, _qs(q)) for route, q, _ in TABLE if route in SIMULATED]
    verdicts = schemas.check([(version, route, qs) for route, qs in rows])
    headers = {"X-User-Id": USER_ID, "X-Auth-Token": TOKEN}
    wrong = []
    with httpx.Client(base_url=url, headers=headers, timeout=5.0) as http:
        for (route, qs), want in zip(rows, verdicts, strict=True):
            r = http.get(f"{API}{route}?{qs}" if qs else f"{API}{route}")
            body = r.json()
            rejected = r.status_code == 400 and body.get("errorType") == "invalid-params"
            expected_error = f"{want.message} [invalid-params]"
            if rejected == want.valid or (rejected and body["error"] != expected_error):
                wrong.append(
                    f"{route}?{qs}: schema {want.valid} ({want.message or 'ok'}), "
                    f"simulator {r.status_code} {body}"
                )
    assert not wrong, f"simulator ({version}) disagrees with rest-typings:\n" + "\n".join(wrong)


def test_empty_count_is_null_on_nullable_routes_not_no_limit(simulator):
    """ajv turns `count=` into null on users/agent (default page size applies); the 7.10.0
    history schema's count is not nullable, so there it is a 400."""
    sim, url = simulator(agents=60, pagination="accepted", default_count=50)
    headers = {"X-User-Id": USER_ID, "X-Auth-Token": TOKEN}
    with httpx.Client(base_url=url, headers=headers, timeout=5.0) as http:
        users = http.get(f"{API}{USERS}?count=").json()
        assert (users["count"], users["total"]) == (50, 60)
        assert http.get(f"{API}{USERS}?count=0").json()["count"] == 60  # 0: no limit
        r = http.get(f"{API}{HISTORY}?{_qs([*H_BASE, ('count', '')])}")
        assert (r.status_code, r.json()["error"]) == (400, "must be number [invalid-params]")
