"""The `agent` label: username, display name or keyed pseudonym (config `agents.label`)."""

from __future__ import annotations

import hashlib
import hmac
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.config import ConfigError, parse_config
from exporter.config.model import AgentFilter
from exporter.model import AgentLive, LiveStatus
from exporter.privacy import PSEUDONYM_HEX, agent_labels, pseudonym
from exporter.rocketchat.parse import parse_agents_page
from exporter.simulator import Simulator, SimulatorConfig, serve
from exporter.snapshot import build_snapshot
from tests.support.faultrig import Rig
from tests.test_snapshot import inputs, k

KEY = b"0123456789abcdef-test-key"
SERVER = {"name": "main", "url": "https://chat.example.com", "user_id": "u-1", "auth_token": "t-1"}


def config_with(agents: dict, tmp_path: Path | None = None):
    return parse_config({"agents": agents, "servers": [SERVER]}, base_dir=str(tmp_path or "."))


def error_with(agents: dict, tmp_path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        config_with(agents, tmp_path)
    return str(info.value)


# ---- the pure mapping ------------------------------------------------------------------------


def test_pseudonym_is_truncated_hmac_sha256_of_the_username():
    expected = hmac.new(KEY, b"alice", hashlib.sha256).hexdigest()[:PSEUDONYM_HEX]
    assert pseudonym(KEY, "alice") == expected
    assert re.fullmatch(r"[0-9a-f]{12}", expected)
    assert pseudonym(KEY, "alice") != pseudonym(KEY + b"x", "alice")  # keyed
    assert pseudonym(KEY, "alice") != pseudonym(KEY, "alice2")


def test_username_mode_is_the_identity():
    assert agent_labels(["b", "a"], "username") == {"a": "a", "b": "b"}


def test_hashed_mode_needs_a_key():
    with pytest.raises(ValueError, match="key"):
        agent_labels(["a"], "hashed")


def test_name_mode_falls_back_to_the_username_and_disambiguates_shared_names():
    names = {"ann": "Ann Lee", "ann2": "Ann Lee", "bob": "  ", "cy": "Cy"}
    labels = agent_labels(["ann", "ann2", "bob", "cy", "dan"], "name", names=names)
    assert labels == {
        "ann": "Ann Lee (ann)",
        "ann2": "Ann Lee (ann2)",
        "bob": "bob",
        "cy": "Cy",
        "dan": "dan",
    }


def test_name_mode_stays_unique_when_a_name_copies_another_username():
    # "bob" has no display name (label "bob"); "rob" calls himself "bob"; "x" mimics the
    # disambiguated form of one of them.
    names = {"rob": "bob", "x": "bob (rob)"}
    labels = agent_labels(["bob", "rob", "x"], "name", names=names)
    assert len(set(labels.values())) == 3


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=6),
        st.sampled_from(["", "A", "B", "A (a)", "a", "b"]) | st.text(max_size=4),
        max_size=12,
    )
)
def test_labels_are_unique_for_every_mode(names):
    users = list(names)
    for mode in ("username", "name", "hashed"):
        labels = agent_labels(users, mode, key=KEY, names=names)
        assert set(labels) == set(users)
        assert len(set(labels.values())) == len(users), (mode, labels)


def test_hashed_handles_untrusted_usernames():
    labels = agent_labels(["\ud800", "a\nb", ""], "hashed", key=KEY)
    assert all(re.fullmatch(r"[0-9a-f]{12}", v) for v in labels.values())


# ---- configuration ---------------------------------------------------------------------------


def test_default_label_is_the_username():
    agents = config_with({}).agents
    assert agents.label == "username" and agents.label_key is None


def test_hashed_reads_the_key_file(tmp_path):
    (tmp_path / "label.key").write_text(KEY.decode() + "\n")
    agents = config_with({"label": "hashed", "label_key_file": "label.key"}, tmp_path).agents
    assert agents.label == "hashed"
    assert agents.labels(["alice"]) == {"alice": pseudonym(KEY, "alice")}
    assert KEY.decode() not in repr(agents)


@pytest.mark.parametrize(
    ("agents", "expected"),
    [
        (
            {"label": "hash"},
            "agents.label: unknown label 'hash' (use one of username, name, hashed)",
        ),
        (
            {"label": 3},
            "agents.label: must be one of username, name, hashed (a string), got a number",
        ),
        (
            {"label": "hashed"},
            "agents.label_key_file: required for label: hashed (e.g. label_key_file:",
        ),
        ({"label_key_file": "label.key"}, "agents.label_key_file: is set but label is not hashed"),
        (
            {"label": "hashed", "label_key_file": "missing.key"},
            "missing.key (make one with: head -c 32",
        ),
        (
            {"label": "hashed", "label_key_file": "short.key"},
            "holds a key shorter than 16 characters",
        ),
        ({"label": "hashed", "label_key_file": None}, "agents.label_key_file: has no value"),
    ],
    ids=["unknown", "not-a-string", "no-key", "key-without-hashed", "missing", "short", "null"],
)
def test_label_errors_name_the_key_and_the_fix(tmp_path, agents, expected):
    (tmp_path / "label.key").write_text(KEY.decode())
    (tmp_path / "short.key").write_text("tooShortKey")
    message = error_with(agents, tmp_path)
    assert expected in message
    assert "tooShortKey" not in message and KEY.decode() not in message


# ---- wiring: parser and snapshot -------------------------------------------------------------


def test_the_agents_page_keeps_the_display_name():
    page = parse_agents_page(
        {
            "users": [
                {"username": "ann", "name": "Ann Lee", "status": "online"},
                {"username": "bob", "name": None},
                {"username": "cy"},
            ],
            "total": 3,
        }
    )
    assert [a.name for a in page.agents] == ["Ann Lee", None, None]


def _filter(**kw) -> AgentFilter:
    return AgentFilter(re.compile(".*"), re.compile(r"bot\..*"), **kw)


def test_snapshot_rows_carry_the_label_and_are_ordered_by_it():
    live = LiveStatus(
        agents=(AgentLive("alice", "online", True, "zoe"), AgentLive("carol", "away", True)),
        counts={},
    )
    snap = build_snapshot(inputs(live=live, agent_filter=_filter(label="name")), k(25, 2))
    assert [r.agent for r in snap.agents] == ["carol", "zoe"]

    plain = build_snapshot(inputs(live=live), k(25, 2))
    assert [r.agent for r in plain.agents] == ["alice", "carol"]
    by_label = {r.agent: r for r in snap.agents}
    assert by_label["zoe"].windows == plain.agents[0].windows  # same figures, new label


def test_the_filter_still_matches_usernames_not_labels():
    live = LiveStatus(agents=(AgentLive("bot.x", "online", True, "Helpful Person"),), counts={})
    snap = build_snapshot(inputs(live=live, agent_filter=_filter(label="name")), k(25, 2))
    assert "Helpful Person" not in {r.agent for r in snap.agents}
    assert "bot.x" not in {r.agent for r in snap.agents}


# ---- the real path: simulator over HTTP, poller, exposition ----------------------------------


def _agent_labels(page: bytes) -> set[str]:
    return set(re.findall(rb'agent="([^"]*)"', page))


def test_hashed_labels_through_the_real_path(tmp_path):
    key_file = tmp_path / "label.key"
    key_file.write_text(KEY.decode())
    rig = Rig(agents=6, agent_filter={"label": "hashed", "label_key_file": str(key_file)})
    try:
        assert rig.poll()
        page = rig.page()
        usernames = [a.username for a in rig.sim.agents]
        expected = {pseudonym(KEY, u).encode() for u in usernames}
        assert _agent_labels(page) and _agent_labels(page) <= expected
        for agent in rig.sim.agents:
            assert agent.username.encode() not in page and agent.name.encode() not in page
    finally:
        rig.close()


def test_name_labels_through_the_real_path():
    rig = Rig(agents=6, agent_filter={"label": "name"})
    try:
        assert rig.poll()
        names = {a.name.encode() for a in rig.sim.agents}
        assert _agent_labels(rig.page()) == names
    finally:
        rig.close()


def test_hashed_labels_from_the_real_exporter_process(tmp_path):
    """`once` in its own process against the simulator over HTTP: the key from the file."""
    sim = Simulator(
        SimulatorConfig(agents=5, seed=4, user_id="u-9", auth_token="t-9", rate_limit=0)
    )
    server = serve(sim, host="127.0.0.1", port=0)
    try:
        (tmp_path / "label.key").write_text(KEY.decode() + "\n")
        cfg = tmp_path / "config.yaml"
        cfg.write_text(
            "agents:\n  label: hashed\n  label_key_file: label.key\n"
            f"servers:\n  - name: p\n    url: {server.url}\n    user_id: u-9\n    auth_token: t-9\n"
        )
        result = subprocess.run(
            [sys.executable, "-m", "exporter", "once", "--config.file", str(cfg)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr
    page = result.stdout.encode()
    assert _agent_labels(page) == {pseudonym(KEY, a.username).encode() for a in sim.agents}
    assert not any(a.username in result.stdout + result.stderr for a in sim.agents)
    assert KEY.decode() not in result.stdout + result.stderr
