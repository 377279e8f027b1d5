"""HTTP routes of the exporter, served for real on 127.0.0.1."""

from __future__ import annotations

import errno
import gzip
import platform
import re
import socket
import time
import urllib.request
import zlib

import pytest

from exporter import __version__, weblisten
from exporter.exposition import ServerHealth
from exporter.process_metrics import PROCESS_METRIC_NAMES
from exporter.publisher import Publisher
from exporter.web import WebServer, parse_listen_address
from tests.support.procs import http_get
from tests.test_exposition import health, snapshot


@pytest.fixture
def served():
    pub = Publisher(["main", "<b>x</b>"], max_staleness=300)
    web = WebServer(("127.0.0.1", 0), pub, clock=lambda: 1000.0)
    web.start()
    yield pub, f"http://127.0.0.1:{web.port}"
    web.stop()


def test_readyz_503_until_every_server_succeeded(served):
    pub, url = served
    assert http_get(url + "/readyz")[0] == 503
    assert http_get(url + "/healthz") == (200, b"ok\n")
    pub.update(health("main"), snapshot("main"), now=1000.0)
    pub.update(health("<b>x</b>"), snapshot("<b>x</b>"), now=1000.0)
    assert http_get(url + "/readyz")[0] == 200


def test_metrics_plain_and_gzip(served):
    pub, url = served
    pub.update(health("main"), snapshot("main"), now=1000.0)
    status, body = http_get(url + "/metrics")
    assert status == 200 and b'rocketchat_omnichannel_up{server="main"} 1' in body
    req = urllib.request.Request(url + "/metrics", headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.headers["Content-Encoding"] == "gzip"
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        # The cached page, then the per-scrape process_* and build_info (fresh values).
        assert gzip.decompress(resp.read()).startswith(pub.page(1000.0))
    assert body.startswith(pub.page(1000.0))


def test_landing_page_escapes_everything(served):
    pub, url = served
    pub.update(
        ServerHealth(server="<b>x</b>", last_poll=990.0, last_error="<script>alert(1)</script>"),
        None,
        now=1000.0,
    )
    status, body = http_get(url + "/")
    assert status == 200
    assert b"<script>" not in body and b"&lt;script&gt;" in body
    assert b"<b>x</b>" not in body and b"&lt;b&gt;x&lt;/b&gt;" in body
    assert b'href="metrics"' in body


def test_unknown_path_is_404(served):
    assert http_get(served[1] + "/admin")[0] == 404


@pytest.mark.parametrize(
    "text, expected",
    [(":9875", ("", 9875)), ("127.0.0.1:0", ("127.0.0.1", 0)), ("[::1]:9875", ("::1", 9875))],
)
def test_parse_listen_address(text, expected):
    assert parse_listen_address(text) == expected


@pytest.mark.parametrize(
    "text", ["9875", "host:", "host:99999", "host:abc", "::1:9875", "[::1:9875", "[host]:1"]
)
def test_parse_listen_address_rejects(text):
    with pytest.raises(ValueError, match="--web.listen-address"):
        parse_listen_address(text)


# ---- node_exporter conventions ------------------------------------------------------------


def raw_request(port: int, request: bytes, host: str = "127.0.0.1") -> bytes:
    """Send `request` as is and read the answer until the server closes (bounded)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.settimeout(5)
        s.connect((host, port))
        s.sendall(request)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "BREW"])
def test_other_methods_are_405_with_allow(served, method):
    port = int(served[1].rsplit(":", 1)[1])
    answer = raw_request(
        port, f"{method} /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc".encode()
    )
    head = answer.split(b"\r\n\r\n", 1)[0].decode() + "\r\n"
    assert head.startswith("HTTP/1.1 405 ")
    assert "\r\nAllow: GET, HEAD\r\n" in head and "\r\nConnection: close\r\n" in head


def test_head_has_no_body(served):
    port = int(served[1].rsplit(":", 1)[1])
    answer = raw_request(port, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\n")


def test_process_metrics_and_build_info_are_fresh_per_scrape(served):
    pub, url = served
    pub.update(health("main"), snapshot("main"), now=1000.0)
    _, body = http_get(url + "/metrics")
    text = body.decode()
    for name in PROCESS_METRIC_NAMES:
        assert f"\n# TYPE {name} " in text, name
    info = re.search(r"rocketchat_omnichannel_exporter_build_info\{(.*)\} 1\n", text)
    assert info, text[-500:]
    labels = dict(re.findall(r'(\w+)="([^"]*)"', info.group(1)))
    assert labels["version"] == __version__
    assert labels["python_version"] == platform.python_version()
    assert labels["revision"]
    # CPU seconds are read at scrape time, not cached with the page.
    first = float(re.search(r"\nprocess_cpu_seconds_total (\S+)", text).group(1))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        sum(i * i for i in range(200_000))  # burn some CPU
        _, again = http_get(url + "/metrics")
        if float(re.search(rb"\nprocess_cpu_seconds_total (\S+)", again).group(1)) > first:
            break
    else:
        raise AssertionError("process_cpu_seconds_total never moved")


def test_gzip_is_one_member_holding_page_and_fresh_tail(served):
    pub, url = served
    pub.update(health("main"), snapshot("main"), now=1000.0)
    req = urllib.request.Request(url + "/metrics", headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        raw = resp.read()
    one = zlib.decompressobj(16 + zlib.MAX_WBITS)  # reads exactly one member, checks CRC+size
    text = one.decompress(raw) + one.flush()
    assert one.eof and one.unused_data == b""
    assert text.startswith(pub.page(1000.0)) and b"\nprocess_open_fds " in text


def test_telemetry_path(tmp_path):
    pub = Publisher(["main"], max_staleness=300)
    web = WebServer(("127.0.0.1", 0), pub, telemetry_path="/x/metrics", clock=lambda: 1000.0)
    web.start()
    try:
        url = f"http://127.0.0.1:{web.port}"
        assert http_get(url + "/x/metrics")[0] == 200
        assert http_get(url + "/metrics")[0] == 404
        assert b'href="x/metrics"' in http_get(url + "/")[1]
    finally:
        web.stop()


def test_every_listen_address_is_a_listener():
    pub = Publisher(["main"], max_staleness=300)
    addresses = [("127.0.0.1", 0), ("127.0.0.1", 0)]
    if socket.has_ipv6 and _ipv6_loopback():
        addresses.append(("::1", 0))
    web = WebServer(addresses, pub, clock=lambda: 1000.0)
    web.start()
    try:
        assert len(set(web.ports)) == len(addresses)
        for host, port in zip((a[0] for a in addresses), web.ports, strict=True):
            host = f"[{host}]" if ":" in host else host
            assert http_get(f"http://{host}:{port}/healthz") == (200, b"ok\n"), host
    finally:
        web.stop()


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_ipv6_literal_listens_on_ipv6():
    if not _ipv6_loopback():
        pytest.skip("no IPv6 loopback here")
    sock = weblisten.bind(*parse_listen_address("[::1]:0"))
    try:
        assert sock.family == socket.AF_INET6 and sock.getsockname()[0] == "::1"
    finally:
        sock.close()


def test_wildcard_is_dual_stack_and_falls_back_to_ipv4(monkeypatch):
    """':port' asks for IPv6 with IPV6_V6ONLY off; without IPv6, IPv4. Nothing is bound here
    (tests bind loopback only): _listen is replaced by a recorder."""
    calls = []

    def fake_listen(family, sockaddr, backlog, dual=False):
        calls.append((family, sockaddr[0], dual))
        if family == socket.AF_INET6 and fail_v6:
            raise OSError(errno.EAFNOSUPPORT, "Address family not supported by protocol")
        return "sock"

    monkeypatch.setattr(weblisten, "_listen", fake_listen)
    fail_v6 = False
    assert weblisten.bind("", 9875) == "sock"
    assert calls == [(socket.AF_INET6, "::", True)]
    calls.clear()
    fail_v6 = True
    assert weblisten.bind("", 9875) == "sock"
    assert calls == [(socket.AF_INET6, "::", True), (socket.AF_INET, "0.0.0.0", False)]


def test_dual_stack_socket_accepts_ipv4():
    """The IPv6 socket _listen makes for ':port' takes IPv4 clients too. Bound to the
    v4-mapped loopback (only possible with IPV6_V6ONLY off), not to every interface."""
    if not _ipv6_loopback():
        pytest.skip("no IPv6 here")
    sock = weblisten._listen(socket.AF_INET6, ("::ffff:127.0.0.1", 0), 8, dual=True)
    sock.setblocking(True)
    sock.settimeout(5)
    try:
        assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
        with socket.create_connection(("127.0.0.1", sock.getsockname()[1]), timeout=5):
            conn, peer = sock.accept()
            conn.close()
        assert peer[0] == "::ffff:127.0.0.1"
    finally:
        sock.close()


def test_a_second_listen_address_does_not_replace_the_first(tmp_path):
    """Through the CLI: two --web.listen-address flags, two listeners."""
    from exporter.cli import build_parser

    args = build_parser().parse_args(
        ["--web.listen-address", "127.0.0.1:1", "--web.listen-address", "[::1]:2"]
    )
    assert args.listen == ["127.0.0.1:1", "[::1]:2"]
    assert build_parser().parse_args([]).listen is None  # serve() applies the :9875 default


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--web.telemetry-path", "/"], "--web.telemetry-path"),
        (["--web.telemetry-path", "metrics"], "--web.telemetry-path"),
        (["--web.max-connections", "0"], "--web.max-connections"),
        (["--web.listen-address", "127.0.0.1:1", "--web.listen-address", "::1:2"], "[::1]:9875"),
    ],
)
def test_bad_web_flags_exit_2_before_serving(capsys, flags, message):
    # serve() itself, not main(): main() would install log handlers on pytest's captured stderr.
    from exporter.cli import build_parser, serve, web_options

    args = build_parser().parse_args(flags)
    assert serve(None, args.listen, **web_options(args)) == 2  # checked before the config is used
    assert message in capsys.readouterr().err


@pytest.mark.slow  # a real process: full suite only (docs/testing.md)
def test_real_process_serves_every_listen_address(tmp_path):
    """Through the real process: two (three with IPv6) --web.listen-address, a custom
    telemetry path, 405 for POST."""
    from exporter.simulator import Simulator, SimulatorConfig
    from exporter.simulator import serve as serve_simulator
    from tests.support.procs import free_port, start_exporter, wait_for

    sim = serve_simulator(Simulator(SimulatorConfig(agents=3, rate_limit=0)), port=0)
    cfg = tmp_path / "config.yaml"
    conf = SimulatorConfig()
    cfg.write_text(
        f"poll_interval: 1s\nservers:\n  - name: a\n    url: {sim.url}\n"
        f"    user_id: {conf.user_id}\n    auth_token: {conf.auth_token}\n"
    )
    second = free_port()
    extra = ["--web.listen-address", f"127.0.0.1:{second}", "--web.telemetry-path", "/m"]
    urls = [f"http://127.0.0.1:{second}"]
    if _ipv6_loopback():
        v6 = free_port()
        extra += ["--web.listen-address", f"[::1]:{v6}"]
        urls.append(f"http://[::1]:{v6}")
    proc, url = start_exporter(cfg, tmp_path, None, *extra)
    try:
        for u in [url, *urls]:
            wait_for(lambda u=u: http_get(u + "/readyz")[0] == 200, 30, f"ready on {u}")
            status, body = http_get(u + "/m")
            assert status == 200 and b"process_cpu_seconds_total" in body, u
            assert http_get(u + "/metrics")[0] == 404
        port = int(url.rsplit(":", 1)[1])
        answer = raw_request(port, b"POST /m HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 405 ") and b"\r\nAllow: GET, HEAD\r\n" in answer
    finally:
        proc.stop()
        sim.stop()
    assert "listening" in proc.log()
