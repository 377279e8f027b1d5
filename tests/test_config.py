"""Configuration loading: defaults, every error fixture, env expansion, secrets."""

from __future__ import annotations

import os
import re
from datetime import date, time
from pathlib import Path

import pytest
import yaml

from exporter.config.loader import ConfigError, load_config, parse_config
from exporter.config.model import Secret, StaffingRule, Window

FIXTURES = Path(__file__).parent / "fixtures" / "config"
BAD_FIXTURES = sorted(FIXTURES.glob("bad_*.yaml"))
SECRET_PARTS = ("s3cr3t", "T0KEN")  # every secret in the fixtures and tests contains these

MINIMAL = {
    "servers": [
        {
            "name": "main",
            "url": "https://chat.example.com",
            "user_id": "uid-s3cr3t",
            "auth_token": "s3cr3t-T0KEN",
        }
    ]
}


def with_server(**changes: object) -> dict[str, object]:
    server = dict(MINIMAL["servers"][0]) | changes
    return {"servers": [{k: v for k, v in server.items() if v is not None}]}


def error_of(data: object, **kwargs: object) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, environ=kwargs.pop("environ", {}), **kwargs)  # type: ignore[arg-type]
    return assert_no_secret(str(info.value))


def assert_no_secret(message: str) -> str:
    for part in SECRET_PARTS:
        assert part not in message, message
    return message


def test_defaults() -> None:
    config = parse_config(MINIMAL, environ={})
    assert config.poll_interval == 60.0
    assert config.max_staleness == 300.0
    assert config.windows == (
        Window("1h", "duration", 3600.0),
        Window("8h", "duration", 8 * 3600.0),
        Window("24h", "duration", 86400.0),
        Window("7d", "duration", 7 * 86400.0),
        Window("today", "today"),
    )
    assert config.windows_include_open_sessions is True
    assert config.agents.include.pattern == ".*"
    assert config.agents.exclude is None
    assert config.agents.per_agent is True
    (server,) = config.servers
    assert server.name == "main"
    assert server.url == "https://chat.example.com"
    assert server.user_id.get() == "uid-s3cr3t"
    assert server.auth_token.get() == "s3cr3t-T0KEN"
    assert server.auth_token.key == "servers[0].auth_token"
    assert server.timezone == "UTC"
    assert server.verify_tls is True
    assert server.ca_file is None
    assert server.timeout == 10.0
    assert server.staffing is None


def test_max_staleness_defaults_to_five_poll_intervals() -> None:
    assert parse_config(MINIMAL | {"poll_interval": "2m"}, environ={}).max_staleness == 600.0


def test_empty_agents_section_means_defaults() -> None:
    agents = parse_config(MINIMAL | {"agents": None}, environ={}).agents
    assert agents.wants("alice") and agents.per_agent


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (45, 45.0),
        (1.5, 1.5),
        ("90", 90.0),
        ("90s", 90.0),
        ("2m", 120.0),
        ("1h30m", 5400.0),
        ("1d", 86400.0),
        ("0.5h", 1800.0),
    ],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_config(MINIMAL | {"poll_interval": value}, environ={}).poll_interval == seconds


@pytest.mark.parametrize("fixture", BAD_FIXTURES, ids=lambda p: p.stem)
def test_error_fixture(fixture: Path) -> None:
    """Each bad_*.yaml names its expected message substrings in `# expect:` comments."""
    text = fixture.read_text(encoding="utf-8")
    expected = re.findall(r"^# expect: (.+)$", text, flags=re.M)
    assert expected, f"{fixture.name} has no '# expect:' line"
    with pytest.raises(ConfigError) as info:
        load_config(str(fixture), environ={})
    message = assert_no_secret(str(info.value))
    for substring in expected:
        assert substring in message, f"{substring!r} not in:\n{message}"
    # Every line starts with a key path or the file name, never with free text.
    for line in message.splitlines():
        assert re.match(r"^[\w\[\]./-]+(:\d+:\d+)?: ", line), line


def test_all_errors_are_reported_one_per_line() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(str(FIXTURES / "bad_many_errors.yaml"), environ={})
    assert len(info.value.errors) == 5
    assert str(info.value) == "\n".join(info.value.errors)


def test_missing_config_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=re.escape(f"{path}: config file not found")):
        load_config(str(path))


def test_full_example() -> None:
    env = {"ROCKETCHAT_USER_ID": "uid-s3cr3t-main", "SUPPORT_AUTH_TOKEN": "s3cr3t-T0KEN-eu"}
    config = load_config(str(FIXTURES / "full.yaml"), environ=env)
    assert (config.poll_interval, config.max_staleness) == (30.0, 300.0)
    assert [w.name for w in config.windows] == [
        "15m",
        "1h",
        "8h",
        "24h",
        "7d",
        "today",
        "yesterday",
    ]
    assert config.windows[-1].kind == "yesterday"
    assert config.agents.wants("alice")
    assert not config.agents.wants("bot-7") and not config.agents.wants("test")
    main, eu, lab = config.servers

    assert main.url == "https://chat.example.com"
    assert main.user_id.get() == "uid-s3cr3t-main"
    assert main.auth_token.path == str(FIXTURES / "secrets" / "rc-token")
    assert main.auth_token.key == "servers[0].auth_token_file"
    assert main.auth_token.get() == "s3cr3t-T0KEN-from-file"
    assert main.ca_file == str(FIXTURES / "ca-placeholder.pem")
    assert main.staffing is not None
    assert main.staffing.timezone == "Europe/Berlin"
    assert main.staffing.rules == (
        StaffingRule(frozenset(range(5)), time(8), time(18), 3),
        StaffingRule(frozenset({5}), time(10), time(14), 1),
    )
    assert main.staffing.holidays == {date(2026, 12, 25), date(2026, 12, 26)}

    assert eu.url == "http://rocketchat.internal:3000"
    assert eu.user_id.get() == "aBcD1234eFgH5678i"  # the ${VAR:-default}
    assert eu.auth_token.get() == "s3cr3t-T0KEN-eu"
    assert eu.staffing is not None
    # The server's own block replaces the top-level one, and its zone defaults to the server's.
    assert eu.staffing.timezone == "America/New_York"
    assert eu.staffing.default == 1
    assert eu.staffing.rules == (StaffingRule(frozenset(range(7)), time(0), time.max, 2),)

    assert lab.auth_token.get() == "lab-token-default"
    assert lab.verify_tls is False
    assert lab.staffing is None
    assert lab.timeout == 10.0
    assert all(p not in repr(config) for p in SECRET_PARTS)


def test_top_level_staffing_zone_defaults_to_each_server() -> None:
    data = {
        "staffing": {"rules": [{"days": "mon", "from": "09:00", "to": "10:00", "agents": 1}]},
        "servers": [
            MINIMAL["servers"][0] | {"timezone": "Asia/Tokyo"},
            MINIMAL["servers"][0] | {"name": "b"},
        ],
    }
    a, b = parse_config(data, environ={}).servers
    assert a.staffing is not None and a.staffing.timezone == "Asia/Tokyo"
    assert b.staffing is not None and b.staffing.timezone == "UTC"
    assert a.staffing.rules == b.staffing.rules


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("Mon, WED, fri", {0, 2, 4}),
        (["sat", "Sunday"], {5, 6}),
        (["fri-mon"], {4, 5, 6, 0}),  # a range may wrap around the week end
        (["mon-sun"], set(range(7))),
    ],
)
def test_day_forms(days: object, expected: set[int]) -> None:
    rule = {"days": days, "from": "08:00", "to": "09:00:30", "agents": 0}
    server = parse_config(MINIMAL | {"staffing": {"rules": [rule]}}, environ={}).servers[0]
    assert server.staffing is not None
    assert server.staffing.rules[0].days == expected
    assert server.staffing.rules[0].end == time(9, 0, 30)


def test_unquoted_times_load_as_times(tmp_path: Path) -> None:
    """YAML 1.1 reads `to: 18:00` as 1080 (base 60); the loader keeps it a time."""
    text = (FIXTURES / "bad_staffing_day.yaml").read_text(encoding="utf-8")
    text = text.replace("[mon, tue, wdn]", "[mon]").replace("'08:00'", "8:00")
    text = text.replace("'18:00'", "18:00:30")
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    staffing = load_config(str(path), environ={}).servers[0].staffing
    assert staffing is not None
    assert (staffing.rules[0].start, staffing.rules[0].end) == (time(8), time(18, 0, 30))


def test_plain_yaml_base60_number_gets_a_quote_hint() -> None:
    """parse_config with data from a plain yaml.safe_load: 18:00 arrives as 1080."""
    data = yaml.safe_load("days: mon\nfrom: 08:00\nto: 18:00\nagents: 1\n")
    assert data["to"] == 1080
    message = error_of(MINIMAL | {"staffing": {"rules": [data]}})
    assert 'staffing.rules[0].to: got the number 1080: write the time in quotes, e.g. "08:00"' in (
        message
    )


def test_holidays_as_dates_or_strings() -> None:
    data = MINIMAL | {"staffing": {"default": 2, "holidays": [date(2026, 1, 1), "2026-05-01"]}}
    staffing = parse_config(data, environ={}).servers[0].staffing
    assert staffing is not None
    assert staffing.holidays == {date(2026, 1, 1), date(2026, 5, 1)}
    assert staffing.default == 2 and staffing.rules == ()


def test_env_expansion_everywhere() -> None:
    env = {"HOST": "chat.example.com", "SECS": "45", "TLS": "false", "MIN": "3", "EMPTY": ""}
    data = {
        "poll_interval": "${SECS}s",
        "staffing": {"default": "${MIN}"},
        "servers": [
            {
                "name": "main",
                "url": "https://${HOST}/rc",
                "user_id": "${UID:-uid-default}",
                "auth_token": "${EMPTY:-tok-default}",  # :- also replaces an empty value
                "verify_tls": "${TLS}",  # env values are strings; true/false is accepted from env
                "timezone": "${TZ_UNSET:-Europe/Paris}",
            }
        ],
        "agents": {"exclude": "cost$${x}"},  # $${ is a literal ${
    }
    config = parse_config(data, environ=env)
    server = config.servers[0]
    assert config.poll_interval == 45.0
    assert server.url == "https://chat.example.com/rc"
    assert server.user_id.get() == "uid-default"
    assert server.auth_token.get() == "tok-default"
    assert server.verify_tls is False
    assert server.timezone == "Europe/Paris"
    assert server.staffing is not None and server.staffing.default == 3
    assert config.agents.exclude is not None and config.agents.exclude.pattern == "cost${x}"


def test_env_is_read_from_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RC_TEST_TOKEN", "s3cr3t-T0KEN-env")
    config = parse_config(with_server(auth_token="${RC_TEST_TOKEN}"))
    assert config.servers[0].auth_token.get() == "s3cr3t-T0KEN-env"


def test_unset_variable_names_the_variable_not_a_value() -> None:
    message = error_of(with_server(auth_token="${RC_MISSING}"), environ={"OTHER": "s3cr3t-T0KEN"})
    assert message.startswith("servers[0].auth_token: environment variable RC_MISSING is not set")


def test_string_that_is_not_from_env_is_not_a_bool() -> None:
    assert "got the string 'false'" in error_of(with_server(verify_tls="false"))


def test_secret_files_are_relative_to_the_config_dir(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "uid").write_text("uid-s3cr3t\n", encoding="utf-8")
    (tmp_path / "token").write_text("  s3cr3t-T0KEN  \n", encoding="utf-8")
    config_path = tmp_path / "conf.yaml"
    config_path.write_text(
        "servers:\n  - name: a\n    url: https://x.example\n"
        "    user_id_file: secrets/uid\n    auth_token_file: token\n",
        encoding="utf-8",
    )
    server = load_config(str(config_path), environ={}).servers[0]
    assert server.user_id.path == str(tmp_path / "secrets" / "uid")
    assert server.user_id.get() == "uid-s3cr3t"
    assert server.auth_token.get() == "s3cr3t-T0KEN"  # whitespace stripped
    assert "s3cr3t" not in repr(server)

    # parse_config resolves against base_dir, not the working directory
    data = with_server(auth_token=None) | {}
    data["servers"][0]["auth_token_file"] = "token"  # type: ignore[index]
    parsed = parse_config(data, base_dir=str(tmp_path), environ={})
    assert parsed.servers[0].auth_token.path == str(tmp_path / "token")


def test_absolute_secret_file_path(tmp_path: Path) -> None:
    token = tmp_path / "t"
    token.write_text("s3cr3t-T0KEN", encoding="utf-8")
    data = with_server(auth_token=None)
    data["servers"][0]["auth_token_file"] = str(token)  # type: ignore[index]
    server = parse_config(data, base_dir="/nonexistent", environ={}).servers[0]
    assert server.auth_token.path == str(token)


def test_secret_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first-s3cr3t", encoding="utf-8")
    os.utime(path, (1_000_000, 1_000_000))
    secret = Secret(path=str(path), key="servers[0].auth_token_file")
    assert secret.get() == "first-s3cr3t"
    path.write_text("second-s3cr3t-longer", encoding="utf-8")
    os.utime(path, (2_000_000, 2_000_000))
    assert secret.get() == "second-s3cr3t-longer"
    # Same size, different mtime: still re-read.
    path.write_text("third--s3cr3t-longer", encoding="utf-8")
    os.utime(path, (3_000_000, 3_000_000))
    assert secret.get() == "third--s3cr3t-longer"
    assert "s3cr3t" not in repr(secret) and "s3cr3t" not in str(secret)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_secret_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("s3cr3t-T0KEN", encoding="utf-8")
    path.chmod(0)
    data = with_server(auth_token=None)
    data["servers"][0]["auth_token_file"] = str(path)  # type: ignore[index]
    assert "Permission denied" in error_of(data)


def test_secret_values_are_redacted_from_any_message() -> None:
    """Safety net: even a message that would echo a value never shows a known secret."""
    message = error_of(
        with_server(user_id="uid-s3cr3t", timezone="s3cr3t-T0KEN", verify_tls="s3cr3t-T0KEN")
    )
    assert "servers[0].timezone: unknown time zone '<redacted>'" in message


def test_secret_not_in_yaml_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text('servers:\n  - auth_token: "s3cr3t-T0KEN\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert f"{path}:" in str(info.value)
    assert_no_secret(str(info.value))
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_ca_file_relative_and_verify_off_without_ca(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x", encoding="utf-8")
    data = with_server(ca_file="ca.pem")
    assert parse_config(data, base_dir=str(tmp_path), environ={}).servers[0].ca_file == str(
        tmp_path / "ca.pem"
    )
    assert parse_config(with_server(verify_tls=False), environ={}).servers[0].verify_tls is False


def test_url_keeps_path_and_strips_slashes() -> None:
    server = parse_config(with_server(url="https://example.com/chat//"), environ={}).servers[0]
    assert server.url == "https://example.com/chat"


def test_zero_agents_and_24h_end() -> None:
    rule = {"days": ["sun"], "from": "00:00:00", "to": "24:00:00", "agents": 0}
    staffing = parse_config(MINIMAL | {"staffing": {"rules": [rule]}}, environ={}).servers[0]
    assert staffing.staffing is not None
    assert staffing.staffing.rules[0].end == time.max


@pytest.mark.parametrize("value", [True, None, [], "1h", {"a": 1}])
def test_type_errors_do_not_crash(value: object) -> None:
    """Any value in any slot gives a ConfigError, never another exception."""
    for key in ("poll_interval", "windows", "agents", "staffing", "servers"):
        try:
            parse_config(MINIMAL | {key: value}, environ={})
        except ConfigError as e:
            assert_no_secret(str(e))
    for key in ("name", "url", "user_id", "timezone", "verify_tls", "timeout", "ca_file"):
        try:
            parse_config(with_server(**{key: value}), environ={})
        except ConfigError as e:
            assert_no_secret(str(e))


def test_failed_expansion_is_reported_once() -> None:
    message = error_of(with_server(auth_token="${NOPE}", url="${NOPE2}", timezone="${NOPE3}"))
    assert message.splitlines() == [
        "servers[0].url: environment variable NOPE2 is not set "
        "(set it, or give a default with ${NOPE2:-default})",
        "servers[0].auth_token: environment variable NOPE is not set "
        "(set it, or give a default with ${NOPE:-default})",
        "servers[0].timezone: environment variable NOPE3 is not set "
        "(set it, or give a default with ${NOPE3:-default})",
    ]


def test_agent_regexes_match_names_with_newlines():
    cfg = parse_config(
        {"servers": [{"name": "a", "url": "http://127.0.0.1:1", "user_id": "u", "auth_token": "t"}]}
    )
    assert cfg.agents.wants("evil\nname")


@pytest.mark.parametrize(
    ("value", "size"),
    [(67108864, 64 << 20), ("64MiB", 64 << 20), ("64 MB", 64 * 10**6), ("1.5GiB", 3 << 29)],
)
def test_max_response_size(value: object, size: int) -> None:
    server = MINIMAL["servers"][0] | {"max_response_size": value}
    config = parse_config(MINIMAL | {"servers": [server]}, environ={})
    assert config.servers[0].max_response_size == size


def test_max_response_size_default_is_64_mib() -> None:
    assert parse_config(MINIMAL, environ={}).servers[0].max_response_size == 64 << 20
