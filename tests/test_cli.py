"""The command line, as a user runs it: real processes, real simulator over HTTP."""

from __future__ import annotations

import os
import platform
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import yaml

from exporter import __version__, cli
from exporter.cli import build_parser
from exporter.config import parse_config
from exporter.simulator import Simulator, SimulatorConfig, serve
from tests.support.procs import (
    Process,
    free_port,
    http_get,
    require_binary,
    start_exporter,
    wait_for,
)

REPO = Path(__file__).resolve().parent.parent

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


def test_version_prints_version_revision_build_date_and_python_like_prometheus():
    result = run("--version")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(
        rf"rocketchat-omnichannel-exporter, version {re.escape(__version__)} "
        r"\(revision: ([0-9a-f]{40}|unknown)\)",
        lines[0],
    ), lines[0]
    fields = dict(line.strip().split(":", 1) for line in lines[1:])
    assert set(fields) == {"build date", "python version", "platform"}
    assert fields["python version"].strip() == platform.python_version()


@pytest.mark.slow  # builds a wheel with pip
def test_a_built_wheel_carries_its_revision_and_build_date(tmp_path):
    """setup.py stamps exporter/_build.py into the wheel (not the source tree)."""
    env = {**os.environ, "SOURCE_REVISION": "0123abc", "SOURCE_DATE_EPOCH": "1764720000"}
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(REPO)]
    result = subprocess.run(pip, capture_output=True, text=True, env=env, timeout=300)
    if result.returncode != 0 and "No matching distribution" in result.stderr:
        pytest.skip("no package index for the build backend")
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        stamp = zf.read("exporter/_build.py").decode()
    assert "REVISION = '0123abc'" in stamp and "BUILD_DATE = '20251203-00:00:00'" in stamp
    assert not (REPO / "exporter" / "_build.py").exists()


def test_help_lists_every_command_and_each_has_its_own_help():
    general = run("--help")
    assert general.returncode == 0
    for command in ("serve", "check-config", "once", "demo", "simulate"):
        assert re.search(rf"^\s+{command}\s+\S", general.stdout, re.M), command
        own = run(command, "--help")
        assert own.returncode == 0, (command, own.stderr)
        assert own.stdout.startswith(f"usage: rocketchat-omnichannel-exporter {command} ")
        assert own.stdout != general.stdout
    assert "--skip-secrets" in run("check-config", "--help").stdout
    assert "--agents" in run("simulate", "--help").stdout


def test_flags_work_before_and_after_the_command(tmp_path, simulator):
    cfg = str(config_file(tmp_path, simulator))
    for args in (["check-config", "--config.file", cfg], ["--config.file", cfg, "check-config"]):
        result = run(*args)
        assert result.returncode == 0 and "configuration is valid" in result.stdout, args
    # A command rejects flags it does not take, naming them.
    result = run("once", "--config.file", cfg, "--skip-secrets")
    assert result.returncode == 2 and "--skip-secrets" in result.stderr


def test_check_config_skip_secrets_checks_everything_but_the_secret_files(tmp_path):
    cfg = tmp_path / "config.yaml"
    body = (
        "servers:\n  - name: x\n    url: https://chat.example.com\n"
        "    user_id_file: secrets/user-id\n    auth_token_file: secrets/auth-token\n"
    )
    cfg.write_text(body)
    plain = run("check-config", "--config.file", str(cfg))
    assert plain.returncode == 2 and "servers[0].auth_token_file: file not found" in plain.stderr
    assert "--skip-secrets" in plain.stderr
    skipped = run("check-config", "--skip-secrets", "--config.file", str(cfg))
    assert skipped.returncode == 0, skipped.stderr
    assert "not checked" in skipped.stdout and "servers[0].user_id_file" in skipped.stdout
    # Any other problem is still an error, and only it is reported.
    cfg.write_text(body + "    timezone: Europe/Berln\n")
    bad = run("check-config", "--skip-secrets", "--config.file", str(cfg))
    assert bad.returncode == 2 and "servers[0].timezone" in bad.stderr
    assert "auth_token_file" not in bad.stderr
    # An empty placeholder file is skipped too; the full check refuses it.
    cfg.write_text(body)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets/user-id").write_text("")
    empty = run("check-config", "--skip-secrets", "--config.file", str(cfg))
    assert empty.returncode == 0 and "user-id is empty" in empty.stdout, empty.stderr
    assert run("check-config", "--config.file", str(cfg)).returncode == 2
    # With the files present it is a plain, full check.
    (tmp_path / "secrets/user-id").write_text(USER)
    (tmp_path / "secrets/auth-token").write_text(TOKEN)
    full = run("check-config", "--skip-secrets", "--config.file", str(cfg))
    assert full.returncode == 0 and "server x: https://chat.example.com" in full.stdout
    assert TOKEN not in full.stdout + full.stderr


def test_demo_prints_the_url_to_open_and_serves_there(tmp_path):
    port = free_port()
    proc = Process(
        [sys.executable, "-m", "exporter", "demo", "--web.listen-address", f"127.0.0.1:{port}"],
        tmp_path / "demo.log",
    )
    try:
        wait_for(lambda: f"open http://127.0.0.1:{port}/" in proc.log(), 30, "demo URL")
        wait_for(lambda: http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200, 30, "ready")
        status, body = http_get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and b'rocketchat_omnichannel_up{server="demo"} 1' in body
        assert "poll_interval too short" not in proc.log()
    finally:
        proc.stop()


def test_demo_listens_on_loopback_by_default():
    args = build_parser().parse_args(["demo"])
    assert args.listen is None and cli.DEMO_LISTEN == "127.0.0.1:9875"
    assert build_parser().parse_args([]).command == "serve"


def test_demo_poll_interval_fits_its_simulators_rate_limit():
    """The demo's first poll fetches every day its longest window needs; the polls after it
    must fit the simulator's limit (Rocket.Chat's default) without waiting, or the exporter
    warns that poll_interval is too short. Checked over two rate windows."""
    sim = SimulatorConfig(agents=cli.DEMO_AGENTS)
    config = parse_config(
        yaml.safe_load(
            cli.DEMO_CONFIG.format(
                poll=cli.DEMO_POLL_SECONDS, url="http://x", user_id="u", token="t"
            )
        )
    )
    assert config.poll_interval == cli.DEMO_POLL_SECONDS
    fill_calls = config.history_days + 1  # at most: every past day the cache keeps, and today
    polls = [0.0] + [
        cli.DEMO_POLL_SECONDS * i
        for i in range(1, 2 * int(sim.rate_window) // cli.DEMO_POLL_SECONDS + 1)
    ]
    calls = [(t, fill_calls if t == 0 else 1) for t in polls]
    for start in polls:  # every window starting at a poll (the limiter's window opens at a call)
        in_window = sum(n for t, n in calls if start <= t < start + sim.rate_window)
        assert in_window <= sim.rate_limit, (start, in_window)


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
        result = run("--web.listen-address", f"127.0.0.1:{port}", *args, "--config.file", str(cfg))
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


@pytest.mark.parametrize(
    "listen,url",
    [
        ("127.0.0.1:9875", "http://127.0.0.1:0/"),
        (":9875", "http://127.0.0.1:0/"),
        ("0.0.0.0:9875", "http://127.0.0.1:0/"),
        ("[::1]:9875", "http://[::1]:0/"),
        (["[::1]:9875", "127.0.0.1:9875"], "http://[::1]:0/"),
    ],
)
def test_demo_url_is_one_a_browser_on_this_host_can_open(listen, url):
    class Web:
        scheme, port = "http", 0

    assert cli.browser_url(Web(), listen) == url  # type: ignore[arg-type]
