"""Every PromQL expression the project ships (dashboards and rules), and what they may use.

Used by tests/test_rules.py and tests/test_dashboards.py, and meant for an end-to-end test that
runs each expression against a real Prometheus:

    from tests.promql_inventory import promql_inventory
    for source, expr in promql_inventory():
        ...  # GET /api/v1/query?query=expr

Sources starting with "dashboard" are panel queries (they should return data once the exporter
has been scraped); "record" are recording rules; "alert" are alert conditions, which return
data only while the alert is pending or firing (check that they evaluate without error).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter import process_metrics
from exporter.exposition import SAMPLE_NAMES

REPO = Path(__file__).resolve().parents[1]
RULES_DIR = REPO / "deploy" / "prometheus"
RULE_TESTS_DIR = RULES_DIR / "tests"
DASHBOARDS_DIR = REPO / "grafana" / "dashboards"
RUNBOOK = REPO / "docs" / "runbook.md"

# What the exporter emits: its own registry of families (tests/test_e2e.py checks that the real
# process emits every one of them). A histogram's or summary's `_bucket`/`_sum`/`_count` (or a counter's `_created`) is accepted
# only if it is in this set, i.e. only if the exporter really emits it.
EMITTED_METRICS: frozenset[str] = frozenset(SAMPLE_NAMES) | frozenset(process_metrics.METRIC_NAMES)
# Series Prometheus itself makes: the scrape's `up`, and ALERTS (dashboard alert annotations).
PROMETHEUS_METRICS: frozenset[str] = frozenset({"up", "ALERTS"})

# What the end-to-end test substitutes for Grafana's built-in variables; every dashboard
# template variable becomes `.*` (all values).
BUILTIN_VARIABLES = {"__rate_interval": "5m", "__range": "1h", "__interval": "1m"}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)(?::\w+)?\]\]")


# ---- rules -------------------------------------------------------------------------------------


def rule_files() -> list[Path]:
    """The Prometheus rule files: deploy/prometheus/*.yaml with a top-level `groups:` list."""
    found = []
    for path in sorted(RULES_DIR.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(doc, dict) and isinstance(doc.get("groups"), list):
            found.append(path)
    return found


def rule_test_files() -> list[Path]:
    return sorted(RULE_TESTS_DIR.glob("*.yaml"))


def rules() -> Iterator[tuple[Path, dict[str, Any]]]:
    """(file, rule) for every alerting and recording rule."""
    for path in rule_files():
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group.get("rules", []):
                yield path, rule


def alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for _, rule in rules() if "alert" in rule}


# ---- dashboards --------------------------------------------------------------------------------


def dashboards() -> dict[Path, dict[str, Any]]:
    return {
        path: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(DASHBOARDS_DIR.glob("*.json"))
    }


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside collapsed rows; rows themselves excluded."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def template_variables(dashboard: dict[str, Any]) -> set[str]:
    return {v["name"] for v in dashboard.get("templating", {}).get("list", [])}


def substitute(expr: str, variables: set[str]) -> str:
    """Grafana variables replaced as for "All"; an undefined variable is an error."""

    def replace(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        if name in BUILTIN_VARIABLES:
            return BUILTIN_VARIABLES[name]
        if name in variables:
            return ".*"
        raise ValueError(f"undefined dashboard variable ${name} in {expr!r}")

    return _VARIABLE.sub(replace, expr)


def dashboard_queries() -> Iterator[tuple[str, str, str]]:
    """(source, raw expr, substituted expr) for every panel target and annotation query."""
    for path, dash in dashboards().items():
        names = template_variables(dash)
        uid = dash.get("uid")
        for panel in panels(dash):
            for target in panel.get("targets", []):
                if target.get("expr"):
                    source = (
                        f"dashboard {uid} ({path.name}) panel {panel.get('id')} "
                        f"{panel.get('title')!r} target {target.get('refId')}"
                    )
                    yield source, target["expr"], substitute(target["expr"], names)
        for annotation in dash.get("annotations", {}).get("list", []):
            if annotation.get("expr"):
                source = f"annotation {uid} ({path.name}) {annotation.get('name')!r}"
                yield source, annotation["expr"], substitute(annotation["expr"], names)


def promql_inventory() -> list[tuple[str, str]]:
    """(source description, expr) for every dashboard panel target and every rule.

    Template variables are substituted ($server, $job, $agent, ... -> .*,
    $__rate_interval -> 5m, $__range -> 1h, $__interval -> 1m), so each expr can be sent to
    Prometheus' HTTP API as is. Annotation queries are left out (they read ALERTS, which is
    empty while nothing fires).
    """
    inventory = [
        (source, expr) for source, _, expr in dashboard_queries() if source.startswith("dashboard ")
    ]
    for path, rule in rules():
        kind, name = ("alert", rule["alert"]) if "alert" in rule else ("record", rule["record"])
        inventory.append((f"{kind} {name} ({path.relative_to(REPO)})", rule["expr"].strip()))
    return inventory


# ---- PromQL ------------------------------------------------------------------------------------

_STRINGS = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_TOKENS = re.compile(
    r"(?P<number>0x[0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?:ms|[smhdwy])*)"
    r"|(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?P<call>\s*\()?"
)
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
    | {"group_left", "group_right", "inf", "nan", "atan2"}
)


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (not functions, keywords, labels or strings)."""
    text = _STRINGS.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _LABEL_LISTS.sub(" ", text)
    names = set()
    for token in _TOKENS.finditer(text):
        name = token.group("name")
        if name and not token.group("call") and name.lower() not in _KEYWORDS:
            names.add(name)
    return names


def recorded_metrics() -> set[str]:
    """Series the recording rules make (deploy/prometheus/recording-rules.yaml)."""
    return {rule["record"] for _, rule in rules() if "record" in rule}


def unknown_metrics(expr: str) -> set[str]:
    return metric_names(expr) - EMITTED_METRICS - PROMETHEUS_METRICS - recorded_metrics()


# ---- promtool ----------------------------------------------------------------------------------


def promtool() -> str:
    """Path of promtool. Missing: a failure in CI (CI=true), a skip on a developer machine."""
    found = shutil.which("promtool") or (
        "/usr/bin/promtool" if os.access("/usr/bin/promtool", os.X_OK) else None
    )
    if found:
        return found
    message = (
        "promtool not found: install Prometheus' promtool (Debian: apt-get install prometheus)"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)
