"""No answer from "Rocket.Chat" can take the exporter down: each case over real HTTP.

The client runs in a subprocess of its own, so that its peak RSS (printed for each case) is
that case's alone. The bound checked is the one docs/reliability.md states: peak RSS under
twice the body limit plus 100 MiB (the interpreter, httpx and the exporter take ~45 MiB).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.support.hostile import HostileServer

MiB = 1 << 20
LIMIT = 64 * MiB  # the default max_body_bytes
RSS_BOUND_KB = (2 * LIMIT + 100 * MiB) // 1024

CLIENT = textwrap.dedent(
    """
    import json, resource, sys, time
    from datetime import date
    from exporter.config.model import Secret, ServerConfig
    from exporter.rocketchat.client import RocketChatClient
    from exporter.rocketchat.errors import RocketChatError

    url, timeout = sys.argv[1], float(sys.argv[2])
    server = ServerConfig(name="h", url=url, user_id=Secret(value="uid-secret-1"),
                          auth_token=Secret(value="token-secret-1"), timeout=timeout)
    client = RocketChatClient(server, sleep=lambda s: None)  # no backoff waits
    started = time.monotonic()
    try:
        client.fetch_history_day(date(2024, 3, 5))
        out = {"reason": None, "error": ""}
    except RocketChatError as exc:
        out = {"reason": exc.reason, "error": str(exc)}
    out["seconds"] = time.monotonic() - started
    out["maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(out))
    """
)


def run_client(url: str, timeout: float = 2.0) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CLIENT, url, str(timeout)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def hostile(request):
    servers: list[HostileServer] = []

    def make(behaviour: str, **kw) -> HostileServer:
        server = HostileServer(behaviour, **kw)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.mark.parametrize(
    ("behaviour", "words"),
    [
        ("huge", f"answer larger than {LIMIT} bytes"),
        ("endless_chunked", f"answer larger than {LIMIT} bytes"),
        ("gzip_bomb", f"answer larger than {LIMIT} bytes"),
        ("nested", "answer is not JSON"),
    ],
)
def test_an_answer_too_large_or_deep_fails_the_request_within_bounded_memory(
    hostile, behaviour, words
):
    server = hostile(behaviour)
    out = run_client(server.url)
    print(f"{behaviour}: {out['maxrss_kb'] / 1024:.0f} MiB peak RSS, {out['seconds']:.2f} s")
    assert out["reason"] == "invalid_response", out
    assert words in out["error"]
    assert out["maxrss_kb"] < RSS_BOUND_KB, out
    assert len(server.requests) == 3  # retried like any unreadable answer, then given up


def test_a_slow_drip_is_cut_at_the_requests_deadline(hostile):
    server = hostile("drip")
    timeout = 0.5  # a whole day in one count=0 answer gets 3 x timeout: 1.5 s per attempt
    out = run_client(server.url, timeout)
    print(f"drip: {out['seconds']:.2f} s for 3 attempts, {out['maxrss_kb'] / 1024:.0f} MiB")
    assert out["reason"] == "invalid_response", out
    assert "still arriving when the request's deadline passed" in out["error"]
    # Each attempt is cut at its deadline: a few bytes of the 1,038 each (one every 0.25 s),
    # where reading on until the answer is whole would have taken 260 s per attempt.
    assert len(server.dripped) == 3 and all(n < 100 for n in server.dripped), server.dripped


def test_a_redirect_is_never_followed_and_credentials_stay_home(hostile):
    thief = hostile("nested")  # anything: it must not be asked at all
    server = hostile("redirect", redirect_to=thief.url)
    out = run_client(server.url)
    assert out["reason"] == "invalid_response" and "redirected to" in out["error"], out
    assert thief.requests == []
    assert "uid-secret-1" not in out["error"] and "token-secret-1" not in out["error"]
