"""The command line, as a user runs it: real processes, real simulator over HTTP."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exporter import __version__
from exporter.simulator import Simulator, SimulatorConfig, serve
from tests.support.procs import free_port, http_get, require_binary, start_exporter, wait_for

TOKEN = "cli-T0KEN-secret"
USER = "cli-user-id-7"


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def simulator():
    sim = Simulator(
        SimulatorConfig(agents=12, seed=3, user_id=USER, auth_token=TOKEN, rate_limit=0)
    )
    server = serve(sim, host="127.0.0.1", port=0)
    yield server.url
    server.stop()


def config_file(tmp_path: Path, url: str, token: str = TOKEN) -> Path:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"poll_interval: 1s\nservers:\n  - name: cli\n    url: {url}\n"
        f"    user_id: {USER}\n    auth_token: {token}\n"
    )
    return cfg


def test_version():
    result = run("--version")
    assert result.returncode == 0 and __version__ in result.stdout


def test_check_config_ok_prints_summary_without_secrets(tmp_path, simulator):
    result = run("check-config", "--config.file", str(config_file(tmp_path, simulator)))
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout and "cli" in result.stdout
    assert TOKEN not in result.stdout + result.stderr and USER not in result.stdout + result.stderr


def test_bad_config_exits_2_before_serving_naming_the_key(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "servers:\n  - name: x\n    url: http://127.0.0.1:1\n    user_id: u\n"
        f"    auth_token: {TOKEN}\n    timezone: Europe/Berln\n"
    )
    port = free_port()
    for args in (["check-config"], [], ["once"]):
        result = run(*args, "--config.file", str(cfg), "--web.listen-address", f"127.0.0.1:{port}")
        assert result.returncode == 2, (args, result.stderr)
        assert "servers[0].timezone" in result.stderr and "Europe/Berlin" in result.stderr
        assert TOKEN not in result.stderr


def test_missing_config_file_exits_2(tmp_path):
    result = run("--config.file", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2 and "nope.yaml" in result.stderr


def test_once_prints_an_exposition_promtool_accepts(tmp_path, simulator):
    result = run("once", "--config.file", str(config_file(tmp_path, simulator)))
    assert result.returncode == 0, result.stderr
    assert 'rocketchat_omnichannel_up{server="cli"} 1' in result.stdout
    assert "rocketchat_omnichannel_agent_available_seconds{" in result.stdout
    promtool = require_binary("promtool")
    check = subprocess.run(
        [promtool, "check", "metrics"],
        input=result.stdout,
        text=True,
        capture_output=True,
        timeout=30,
    )
    assert check.returncode == 0 and check.stdout + check.stderr == "", check.stdout + check.stderr


def test_once_exits_1_and_logs_the_reason_when_auth_fails(tmp_path, simulator):
    result = run(
        "once", "--config.file", str(config_file(tmp_path, simulator, token="wrong-TOKEN"))
    )
    assert result.returncode == 1
    assert 'rocketchat_omnichannel_up{server="cli"} 0' in result.stdout
    assert "auth" in result.stderr and "wrong-TOKEN" not in result.stderr + result.stdout


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stops_within_5s_on_signal(tmp_path, simulator, sig):
    proc, url = start_exporter(config_file(tmp_path, simulator), tmp_path)
    try:
        wait_for(lambda: http_get(url + "/readyz")[0] == 200, 30, "ready")
        started = time.monotonic()
        proc.proc.send_signal(sig)
        proc.proc.wait(timeout=10)
        assert time.monotonic() - started < 5
        assert proc.proc.returncode == 0
    finally:
        proc.stop()
