"""HTTP routes of the exporter, served for real on 127.0.0.1."""

from __future__ import annotations

import gzip
import urllib.request

import pytest

from exporter.exposition import ServerHealth
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
        assert gzip.decompress(resp.read()) == body


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


@pytest.mark.parametrize("text", ["9875", "host:", "host:99999", "host:abc"])
def test_parse_listen_address_rejects(text):
    with pytest.raises(ValueError, match="--web.listen-address"):
        parse_listen_address(text)
