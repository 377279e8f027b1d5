"""The Prometheus rules: promtool accepts them, their unit tests pass and cover every alert,
every alert is documented in the runbook and uses only metrics the exporter emits."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.promql_inventory import (
    REPO,
    RUNBOOK,
    alerts,
    promtool,
    rule_files,
    rule_test_files,
    rules,
    unknown_metrics,
)

RUNBOOK_URL = (
    "https://github.com/rocketchat-omnichannel-exporter/rocketchat-omnichannel-exporter"
    "/blob/main/docs/runbook.md"
)
REQUIRED_ALERTS = {
    "RocketChatOmnichannelNoAgentAvailable": "critical",
    "RocketChatOmnichannelUnderstaffed": "warning",
    "RocketChatOmnichannelExporterDown": "critical",
    "RocketChatOmnichannelPollFailing": "warning",
    "RocketChatOmnichannelNoSuccessfulPoll": "warning",
    "RocketChatOmnichannelDataStale": "warning",
    "RocketChatOmnichannelAuthFailing": "critical",
    "RocketChatOmnichannelAgentsTruncated": "info",
    "RocketChatOmnichannelRateLimited": "warning",
    "RocketChatOmnichannelChatsWaitingNoAgent": "critical",
    "RocketChatOmnichannelChatSlotsFull": "warning",
    "RocketChatOmnichannelQueueWaitLong": "warning",
    "RocketChatOmnichannelDepartmentUnderstaffed": "warning",
    "RocketChatOmnichannelServiceLevelLow": "warning",
}
# Alerts whose value is a constant (`up == 0` is 0, `absent()` is 1): no $value to print.
CONSTANT_VALUE_ALERTS = {
    "RocketChatOmnichannelExporterDown",
    "RocketChatOmnichannelPollFailing",
    "RocketChatOmnichannelNoSuccessfulPoll",  # server_info is 1; the fill progress is queried
}
# Alerts about the staffing level must not act on failed or stale polls (docs/runbook.md).
STAFFING_ALERTS = {"RocketChatOmnichannelNoAgentAvailable", "RocketChatOmnichannelUnderstaffed"}
# The queue and department alerts (departments on): the same freshness guard, per department.
QUEUE_ALERTS = {
    "RocketChatOmnichannelChatsWaitingNoAgent",
    "RocketChatOmnichannelChatSlotsFull",
    "RocketChatOmnichannelQueueWaitLong",
    "RocketChatOmnichannelDepartmentUnderstaffed",
}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=120)


def github_anchor(heading: str) -> str:
    """The id GitHub gives a markdown heading."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def runbook_sections() -> dict[str, str]:
    """anchor -> section text, for every `## ` heading of the runbook."""
    sections: dict[str, str] = {}
    anchor = None
    for line in RUNBOOK.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            anchor = github_anchor(line[3:])
            sections[anchor] = ""
        elif anchor is not None:
            sections[anchor] += line + "\n"
    return sections


def rule_tests() -> list[tuple[Path, dict]]:
    """(test file, alert_rule_test entry) for every entry in every promtool test file."""
    entries = []
    for path in rule_test_files():
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for test in doc.get("tests", []):
            for entry in test.get("alert_rule_test", []):
                entries.append((path, entry))
    return entries


# ---- promtool ----------------------------------------------------------------------------------


def test_there_are_rule_files_and_tests():
    assert [p.name for p in rule_files()] and rule_test_files()
    assert "alerts.yaml" in [p.name for p in rule_files()]


@pytest.mark.parametrize("path", rule_files(), ids=lambda p: p.name)
def test_promtool_check_rules(path):
    result = run(promtool(), "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_pass():
    result = run(promtool(), "test", "rules", *map(str, rule_test_files()))
    assert result.returncode == 0, result.stdout + result.stderr


def test_unit_tests_load_every_rule_file():
    wanted = {p.resolve() for p in rule_files()}
    for path in rule_test_files():
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        loaded = {(path.parent / f).resolve() for f in doc.get("rule_files", [])}
        assert loaded == wanted, f"{path.name} should load every rule file"


# ---- alerts ------------------------------------------------------------------------------------


def test_required_alerts_exist_with_their_severity():
    found = {name: rule.get("labels", {}).get("severity") for name, rule in alerts().items()}
    assert found == REQUIRED_ALERTS


def test_alert_names_are_unique():
    names = [rule["alert"] for _, rule in rules() if "alert" in rule]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("name", sorted(REQUIRED_ALERTS))
def test_alert_has_labels_annotations_and_for(name):
    rule = alerts()[name]
    assert rule["labels"]["severity"] in {"critical", "warning", "info"}
    annotations = rule["annotations"]
    for key in ("summary", "description", "runbook_url"):
        assert annotations.get(key, "").strip(), f"{name}: missing annotation {key}"
    # Templated: says which server (or target) and the value that triggered it.
    assert re.search(r"\$labels\.(server|instance)", annotations["description"]), name
    if name not in CONSTANT_VALUE_ALERTS:
        assert "$value" in annotations["description"], name
    assert annotations["runbook_url"] == f"{RUNBOOK_URL}#{name.lower()}"
    assert re.fullmatch(r"\d+[smh]", rule.get("for", "")), f"{name}: explicit `for:` expected"


@pytest.mark.parametrize("name", sorted(REQUIRED_ALERTS))
def test_runbook_section_explains_the_alert_and_its_for(name):
    sections = runbook_sections()
    anchor = alerts()[name]["annotations"]["runbook_url"].split("#", 1)[1]
    assert anchor in sections, f"docs/runbook.md has no heading with anchor #{anchor}"
    text = sections[anchor]
    assert f"`for: {alerts()[name]['for']}`" in text, f"{name}: explain its for: in the runbook"
    for part in ("**Meaning.**", "**What to check.**", "**How to fix.**"):
        assert part in text, f"{name}: runbook section lacks {part}"


@pytest.mark.parametrize("name", sorted(STAFFING_ALERTS))
def test_staffing_alerts_require_a_fresh_successful_poll(name):
    expr = " ".join(alerts()[name]["expr"].split())
    assert "rocketchat_omnichannel_required_agents" in expr
    assert "and rocketchat_omnichannel_up == 1" in expr
    assert "rocketchat_omnichannel_last_success_timestamp_seconds" in expr


@pytest.mark.parametrize("name", sorted(QUEUE_ALERTS))
def test_queue_alerts_require_a_fresh_successful_poll(name):
    expr = " ".join(alerts()[name]["expr"].split())
    assert "and ignoring (department) rocketchat_omnichannel_up == 1" in expr
    assert "rocketchat_omnichannel_last_success_timestamp_seconds" in expr
    assert "rocketchat_omnichannel_department_" in expr


def test_exporter_down_uses_the_documented_job_regex():
    expr = alerts()["RocketChatOmnichannelExporterDown"]["expr"]
    assert expr.count('up{job=~".*rocketchat-omnichannel.*"}') == 2
    assert "absent(" in expr
    assert ".*rocketchat-omnichannel.*" in RUNBOOK.read_text(encoding="utf-8")


def test_no_successful_poll_needs_neither_up_nor_a_last_success():
    """During the initial fill `up` and the last-success timestamp are absent: the alert must
    start from the per-server info series, which exists from the exporter's first second."""
    expr = " ".join(alerts()["RocketChatOmnichannelNoSuccessfulPoll"]["expr"].split())
    assert expr == (
        "rocketchat_omnichannel_server_info unless on (job, instance, server)"
        " rocketchat_omnichannel_last_success_timestamp_seconds"
    )


@pytest.mark.parametrize("path_rule", list(rules()), ids=lambda pr: pr[1].get("alert", "record"))
def test_rules_use_only_emitted_metrics(path_rule):
    path, rule = path_rule
    assert not unknown_metrics(rule["expr"]), f"{path.name}: {rule.get('alert')}"


# ---- unit test coverage ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(REQUIRED_ALERTS))
def test_every_alert_has_a_firing_and_a_quiet_test_case(name):
    cases = [entry for _, entry in rule_tests() if entry.get("alertname") == name]
    firing = [c for c in cases if c.get("exp_alerts")]
    quiet = [c for c in cases if not c.get("exp_alerts")]
    assert firing, f"{name}: no promtool test case where it fires"
    assert quiet, f"{name}: no promtool test case where it must stay quiet"


def test_firing_cases_pin_the_exact_labels_and_annotations():
    for path, entry in rule_tests():
        name = entry.get("alertname")
        rule = alerts()[name]
        for alert in entry.get("exp_alerts") or []:
            labels = alert.get("exp_labels", {})
            assert labels.get("severity") == rule["labels"]["severity"], (path.name, name)
            annotations = alert.get("exp_annotations", {})
            assert set(annotations) == set(rule["annotations"]), (path.name, name)
