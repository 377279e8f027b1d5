"""The Grafana dashboards: generated from grafana/generate.py, portable (datasource variable, no
`__inputs`), every panel documented and with a unit, only metrics the exporter emits, and
every query valid PromQL."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.promql_inventory import (
    DASHBOARDS_DIR,
    REPO,
    dashboard_queries,
    dashboards,
    panels,
    promql_inventory,
    promtool,
    rule_files,
    rules,
    unknown_metrics,
)
from tests.support.procs import Process, Prometheus, free_port, http_get, start_exporter, wait_for

DS = {"type": "prometheus", "uid": "${datasource}"}
# Stable uids: links, bookmarks and provisioning depend on them. Change only deliberately.
EXPECTED_UIDS = {
    "rocketchat-omnichannel-staffing.json": "rc-omni-staffing",
    "rocketchat-omnichannel-agent.json": "rc-omni-agent",
}
ALL_DASHBOARDS = list(dashboards().items())
IDS = [path.name for path, _ in ALL_DASHBOARDS]


def generator():
    spec = importlib.util.spec_from_file_location("grafana_generate", REPO / "grafana/generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


def variables(dash: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dash["templating"]["list"]}


def by_dashboard(test):
    return pytest.mark.parametrize("path,dash", ALL_DASHBOARDS, ids=IDS)(test)


# ---- generation --------------------------------------------------------------------------------


def test_committed_json_is_what_the_generator_builds():
    built = generator().rendered()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in DASHBOARDS_DIR.glob("*.json")}
    assert set(on_disk) == set(built), "every dashboard comes from grafana/generate.py"
    for name, text in built.items():
        assert on_disk[name] == text, f"{name} is stale: run python grafana/generate.py"


def test_generator_check_mode_agrees():
    result = subprocess.run(
        ["python3", "grafana/generate.py", "--check"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


# ---- identity, variables, links ----------------------------------------------------------------


def test_uids_are_stable_and_unique():
    assert {path.name: dash["uid"] for path, dash in ALL_DASHBOARDS} == EXPECTED_UIDS


@by_dashboard
def test_importable_anywhere(path, dash):
    assert "__inputs" not in dash and "__requires" not in dash
    assert dash.get("id") is None
    assert 36 <= dash["schemaVersion"] <= 41
    assert dash["title"].startswith("Rocket.Chat Omnichannel")
    assert "rocketchat-omnichannel" in dash["tags"]
    assert dash.get("description")


@by_dashboard
def test_template_variables(path, dash):
    found = variables(dash)
    ds = found["datasource"]
    assert (ds["type"], ds["query"]) == ("datasource", "prometheus")
    for name in ("job", "server"):
        var = found[name]
        assert var["type"] == "query" and var["datasource"] == DS
        assert var["query"].startswith("label_values(")
        assert var["includeAll"] and var["allValue"] == ".*"
    for var in found.values():
        if var["type"] == "query":
            assert var["datasource"] == DS, var["name"]
            assert "label_values(" in var["query"], var["name"]


@by_dashboard
def test_job_and_server_variables_exist_before_the_first_poll_ends(path, dash):
    """During the initial fill (up to half an hour) `up` and every window series are absent:
    the variables must come from series the exporter exposes from its first second."""
    found = variables(dash)
    assert found["job"]["query"] == "label_values(rocketchat_omnichannel_exporter_build_info, job)"
    assert found["server"]["query"] == (
        'label_values(rocketchat_omnichannel_server_info{job=~"$job"}, server)'
    )


@by_dashboard
def test_the_fill_progress_and_eta_come_first(path, dash):
    first = next(p for p in dash["panels"] if p["type"] != "row")
    exprs = " ".join(t["expr"] for t in first["targets"])
    assert first["type"] == "stat" and "fill" in first["title"].lower()
    assert "rocketchat_omnichannel_fill_progress_ratio" in exprs
    assert "rocketchat_omnichannel_fill_eta_seconds" in exprs
    assert first["fieldConfig"]["defaults"]["unit"] == "percentunit"
    eta = first["fieldConfig"]["overrides"][0]
    assert {"id": "unit", "value": "s"} in eta["properties"]


@by_dashboard
def test_every_panel_and_query_uses_the_datasource_variable(path, dash):
    for panel in panels(dash):
        assert panel.get("datasource") == DS, panel.get("title")
        assert panel.get("targets"), panel.get("title")
        for target in panel["targets"]:
            assert target.get("datasource") == DS, (panel["title"], target.get("refId"))
    for annotation in dash["annotations"]["list"]:
        assert annotation.get("datasource") == DS


@by_dashboard
def test_every_panel_has_a_unit_and_a_description(path, dash):
    for panel in panels(dash):
        assert panel.get("description", "").strip(), f"{panel.get('title')}: no description"
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
        assert unit, f"{panel.get('title')}: no fieldConfig.defaults.unit"


@by_dashboard
def test_panel_ids_unique_and_grid_without_overlap(path, dash):
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    taken: set[tuple[int, int]] = set()
    for p in dash["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24, p["title"]
        cells = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & taken, f"{p['title']} overlaps another panel"
        taken |= cells


def test_dashboards_link_to_each_other():
    for path, dash in ALL_DASHBOARDS:
        links = dash["links"]
        assert any(
            link["type"] == "dashboards"
            and set(link["tags"]) <= {t for _, d in ALL_DASHBOARDS for t in d["tags"]}
            and link["includeVars"]
            and link["keepTime"]
            for link in links
        ), path.name
        linked_tags = {t for link in links for t in link.get("tags", [])}
        for other_path, other in ALL_DASHBOARDS:
            if other_path != path:
                assert linked_tags & set(other["tags"]), f"{path.name} -> {other_path.name}"
    staffing = dict(ALL_DASHBOARDS)[DASHBOARDS_DIR / "rocketchat-omnichannel-staffing.json"]
    urls = re.findall(r'"url": "([^"]+)"', str(staffing).replace("'", '"'))
    assert any(url.startswith("/d/rc-omni-agent?") and "var-agent=" in url for url in urls)


# ---- queries -----------------------------------------------------------------------------------


def test_every_query_uses_only_emitted_metrics_and_defined_variables():
    queries = list(dashboard_queries())  # substitute() raises on an undefined variable
    assert queries
    for source, raw, _ in queries:
        assert not unknown_metrics(raw), source


@by_dashboard
def test_queries_filter_by_job_and_server(path, dash):
    for panel in panels(dash):
        for target in panel["targets"]:
            expr = target["expr"]
            assert 'job=~"$job"' in expr, (panel["title"], expr)
            if "exporter_build_info" not in expr:  # a per-process metric, no server label
                assert 'server=~"$server"' in expr, (panel["title"], expr)


def test_promql_inventory_covers_every_target_and_rule():
    inventory = promql_inventory()
    targets = [t for _, d in ALL_DASHBOARDS for p in panels(d) for t in p["targets"]]
    dashboard_entries = [s for s, _ in inventory if s.startswith("dashboard ")]
    rule_entries = [s for s, _ in inventory if s.startswith(("alert ", "record "))]
    assert len(dashboard_entries) == len(targets)
    assert len(rule_entries) == len(list(rules()))
    for source, expr in inventory:
        assert "$" not in expr and "[[" not in expr, source
    assert any("[5m]" in expr for _, expr in inventory)


def test_every_query_is_valid_promql(tmp_path: Path):
    """promtool parses each query (substituted as for "All") as a recording rule."""
    queries = list(dashboard_queries())
    rule_file = tmp_path / "dashboard-queries.yaml"
    rule_file.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "dashboard-queries",
                        "rules": [
                            {"record": f"dashboard_query_{i}", "expr": expr}
                            for i, (_, _, expr) in enumerate(queries)
                        ],
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    result = subprocess.run(
        [promtool(), "check", "rules", str(rule_file)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---- during the first fill, through a real Prometheus ----------------------------------------


@pytest.mark.e2e
@pytest.mark.slow  # a simulator, the exporter and Prometheus
def test_variables_fill_stat_and_alert_work_while_the_first_fill_runs(tmp_path):
    """A first fill throttled by Rocket.Chat's rate limit takes minutes: `up` is absent all
    that time. The dashboards' job and server variables (as Grafana asks Prometheus for them),
    the fill stat and the NoSuccessfulPoll condition must have data from the start."""
    sim_port = free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    procs = [
        Process(
            [
                sys.executable,
                "-m",
                "exporter",
                "simulate",
                "--listen",
                f"127.0.0.1:{sim_port}",
                "--agents",
                "20",
                "--rate-limit",
                "1",  # one call per route per minute: the 8-day fill takes about 8 minutes
                "--rate-window",
                "60",
            ],
            tmp_path / "simulator.log",
        )
    ]
    try:
        wait_for(lambda: http_get(sim_url + "/api/info")[0] == 200, 20, "simulator up")
        cfg = tmp_path / "config.yaml"
        cfg.write_text(
            f"windows: [1h, 7d, today]\nservers:\n  - name: filling\n    url: {sim_url}\n"
            "    user_id: sim-user\n    auth_token: sim-token\n"
        )
        exporter, url = start_exporter(cfg, tmp_path)
        procs.append(exporter)
        prom = Prometheus(
            tmp_path, [url.removeprefix("http://")], rule_files=[str(p) for p in rule_files()]
        )
        procs.append(prom)
        wait_for(
            lambda: prom.query("rocketchat_omnichannel_server_info"), 30, "server_info scraped"
        )

        dash = dict(ALL_DASHBOARDS)[DASHBOARDS_DIR / "rocketchat-omnichannel-staffing.json"]
        found = variables(dash)

        def label_values(var: str) -> list[str]:
            metric, label = re.fullmatch(
                r"label_values\((.+), (\w+)\)", found[var]["query"]
            ).groups()
            metric = metric.replace("$job", ".*")
            return prom.api(f"label/{label}/values", **{"match[]": metric})

        assert label_values("job") == ["rocketchat-omnichannel"]
        assert label_values("server") == ["filling"]
        assert prom.query("rocketchat_omnichannel_up") == [], "the fill should still be running"
        progress = prom.query('rocketchat_omnichannel_fill_progress_ratio{server="filling"}')
        assert progress and 0 <= float(progress[0]["value"][1]) < 1
        assert prom.query('rocketchat_omnichannel_fill_eta_seconds{server="filling"}')
        pending = wait_for(
            lambda: prom.query(
                'ALERTS{alertname="RocketChatOmnichannelNoSuccessfulPoll", server="filling"}'
            ),
            30,
            "NoSuccessfulPoll pending",
        )
        assert pending[0]["metric"]["alertstate"] == "pending"
    finally:
        for p in reversed(procs):
            p.stop()
