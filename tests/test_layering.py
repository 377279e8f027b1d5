"""The one-way data flow, enforced: each stage imports only the stages before it.

    config -> Rocket.Chat client -> per-day history cache -> math -> snapshot -> exposition
    -> web / cli (and the poller, which wires the stages together and owns time and threads)

Shared modules (value types, pure helpers) may be imported by every stage and import no stage.
The math is pure: standard library and shared values only, no clock reads; importing it loads
neither PyYAML nor httpx. The simulator is test and demo tooling: production code imports it
only inside the `demo` / `simulate` commands of exporter/cli.py.

Imports are read from the source (every `import`, also inside functions), so a test fails on
the line that breaks a rule, before anything runs.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "exporter"

# Module name prefix -> stage. The longest matching prefix wins; a module matching none fails
# test_every_module_has_a_stage (add it here where it belongs in the flow).
SHARED = 0
STAGES: dict[str, int] = {
    # shared: importable by every stage, importing no stage
    "exporter": SHARED,  # the package itself: __version__
    "exporter.model": SHARED,  # value types of the data flowing between stages
    "exporter.privacy": SHARED,
    "exporter.logs": SHARED,
    "exporter.text": SHARED,  # clean(): untrusted text made safe where it enters
    "exporter.localtime": SHARED,  # day_start / local_date: server-local calendar days
    "exporter.intervals": SHARED,  # merge_intervals: the parser's repair and the math's
    "exporter.buildinfo": SHARED,  # version, revision, build date: --version and build_info
    # the flow
    "exporter.config": 1,
    "exporter.rocketchat": 2,
    "exporter.daycache": 3,
    "exporter.daystore": 3,  # the history cache's days on disk (history_cache_dir)
    "exporter.availability": 4,
    "exporter.staffing": 4,
    "exporter.sessions": 4,
    "exporter.zonecheck": 4,
    "exporter.departments": 4,  # the team math per department, the queue and the load
    "exporter.departments_past": 4,  # its past part kept between polls
    "exporter.servicelevel": 4,  # closed chats into histograms (service_level)
    "exporter.servicelevel_feed": 5,  # the rooms fetch per poll and its tally (no clock)
    "exporter.snapshot": 5,
    "exporter.parts": 5,
    "exporter.pastdays": 5,
    "exporter.exposition": 6,
    "exporter.backfillday": 6,  # one day of history as timestamped samples (backfill)
    "exporter.backfill_output": 7,
    "exporter.backfill_progress": 7,
    "exporter.backfill_departments": 7,  # which departments backfill writes (read once)
    "exporter.backfill": 7,  # the backfill command: owns time, like the poller
    "exporter.exposition_departments": 6,  # the department families of /metrics
    "exporter.exposition_servicelevel": 6,  # the service-level families (histograms)
    "exporter.publisher": 6,
    "exporter.page": 6,  # a server's part of the page, the joined page (plain, gzip)
    "exporter.crc": 6,  # CRC-32 of a concatenation from its parts' (the joined gzip page)
    "exporter.poller": 7,
    "exporter.webconfig": 7,
    "exporter.web": 7,
    "exporter.weblisten": 7,  # listeners, the connection cap and deadlines of the web stage
    "exporter.process_metrics": 7,  # process_* and build_info, rendered per scrape by web
    "exporter.cli": 7,
    "exporter.__main__": 7,
}
STAGE_NAMES = {
    SHARED: "shared",
    1: "config",
    2: "Rocket.Chat client",
    3: "history cache",
    4: "math",
    5: "snapshot",
    6: "exposition",
    7: "web/cli",
}
MATH = (
    "exporter.availability",
    "exporter.staffing",
    "exporter.sessions",
    "exporter.zonecheck",
    "exporter.departments",
    "exporter.departments_past",
    "exporter.servicelevel",
)
# What pure modules (the math, and the snapshot built from it) may import from the package:
# shared modules, the config's value types, and (for the snapshot) the math.
PURE_ALLOWED = ("exporter.config.model",)
SIMULATOR = "exporter.simulator"
# Clock reads the math must not make: the poller passes `now` in.
CLOCK_CALLS = {("time", "time"), ("time", "monotonic"), ("datetime", "now"), ("date", "today")}
CLOCK_CALLS |= {("datetime", "utcnow"), ("time", "time_ns"), ("time", "localtime")}

# Rules still broken on main, by module (strict: the xfail goes once the module is fixed).
BROKEN_UPWARD: dict[str, str] = {}
BROKEN_PURE: dict[str, str] = {}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _production_modules() -> list[str]:
    names = (_module_name(p) for p in sorted(PACKAGE.rglob("*.py")))
    return [n for n in names if not _is_simulator(n)]


def _is_simulator(name: str) -> bool:
    return name == SIMULATOR or name.startswith(SIMULATOR + ".")


@cache
def _all_modules() -> frozenset[str]:
    return frozenset(_module_name(p) for p in PACKAGE.rglob("*.py"))


def _source(name: str) -> Path:
    base = ROOT.joinpath(*name.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


@cache
def _tree(name: str) -> ast.Module:
    path = _source(name)
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def _imports(name: str) -> list[tuple[int, str, bool]]:
    """(line, imported module, at module level) for every import in `name`, package-internal
    names resolved to their module (`from exporter import logs` -> exporter.logs)."""
    is_package = _source(name).name == "__init__.py"
    out = []
    top_level = {id(node) for node in _tree(name).body}
    for node in ast.walk(_tree(name)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = []
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.append(sub if sub in _all_modules() else base)
        else:
            continue
        out.extend((node.lineno, t, id(node) in top_level) for t in targets)
    return out


def _internal_imports(name: str) -> list[tuple[int, str, bool]]:
    return [i for i in _imports(name) if i[1] == "exporter" or i[1].startswith("exporter.")]


def _stage(name: str) -> int | None:
    best = None
    for prefix in STAGES:
        nested = prefix != "exporter" and name.startswith(prefix + ".")  # the package: exact
        if (name == prefix or nested) and (best is None or len(prefix) > len(best)):
            best = prefix
    return STAGES[best] if best is not None else None


def _xfail_where(broken: dict[str, str], modules: list[str] | None = None) -> list:
    """`modules` (all production modules by default), those in `broken` marked strict xfail."""
    return [
        pytest.param(m, marks=pytest.mark.xfail(strict=True, reason=broken[m]))
        if m in broken
        else m
        for m in (_production_modules() if modules is None else modules)
    ]


# ---- rules -----------------------------------------------------------------------------------


def test_every_module_has_a_stage():
    missing = [m for m in _production_modules() if _stage(m) is None]
    assert not missing, f"give these modules a stage in STAGES: {missing}"


@pytest.mark.parametrize("module", _xfail_where(BROKEN_UPWARD))
def test_no_upward_imports(module):
    own = _stage(module)
    assert own is not None
    upward = [
        f"{_source(module).relative_to(ROOT)}:{line}: imports {target} "
        f"({STAGE_NAMES[_stage(target)]}, after {STAGE_NAMES[own]})"
        for line, target, _ in _internal_imports(module)
        if not _is_simulator(target)
        and _stage(target) is not None
        and _stage(target) > own
        and not (own == SHARED and target == "exporter")
    ]
    if own == SHARED:  # shared modules import no stage at all
        upward += [
            f"{_source(module).relative_to(ROOT)}:{line}: shared module imports {target}"
            for line, target, _ in _internal_imports(module)
            if _stage(target) not in (SHARED, None)
        ]
    assert not upward, "\n".join(upward)


SNAPSHOT = ("exporter.snapshot", "exporter.parts", "exporter.pastdays")


@pytest.mark.parametrize("module", _xfail_where(BROKEN_PURE, [*MATH, *SNAPSHOT]))
def test_pure_modules_import_only_values_and_the_math(module):
    _assert_pure(module)


def _assert_pure(module: str) -> None:
    # The math imports values only; the snapshot's modules also the math and each other.
    allowed_stages = {SHARED, 4} | ({5} if module in SNAPSHOT else set())
    bad = [
        f"{_source(module).relative_to(ROOT)}:{line}: imports {target}"
        for line, target, _ in _internal_imports(module)
        if target not in PURE_ALLOWED and _stage(target) not in allowed_stages
    ]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("module", MATH)
def test_math_uses_only_the_standard_library_and_reads_no_clock(module):
    third_party = [
        f"line {line}: {target}"
        for line, target, _ in _imports(module)
        if not target.startswith("exporter")
        and target.split(".")[0] not in sys.stdlib_module_names
        and target != "__future__"
    ]
    assert not third_party, third_party
    clock = [
        f"line {node.lineno}: {node.func.value.id}.{node.func.attr}()"
        for node in ast.walk(_tree(module))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and (node.func.value.id, node.func.attr) in CLOCK_CALLS
    ]
    assert not clock, f"{module} reads the clock (take `now` as an argument): {clock}"


def test_importing_the_math_loads_neither_yaml_nor_httpx():
    code = (
        "import sys\n"
        "import exporter.availability, exporter.staffing, exporter.sessions\n"
        "heavy = ('yaml', 'httpx', 'prometheus_client', 'exporter.simulator')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"importing the math loaded {out.stdout.strip()}"


def test_config_value_types_import_without_yaml():
    code = "import sys, exporter.config.model, exporter.config; print('yaml' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == "False", out.stdout + out.stderr


@pytest.mark.parametrize("module", _production_modules())
def test_production_code_never_imports_the_simulator(module):
    found = [(line, t, top) for line, t, top in _imports(module) if _is_simulator(t)]
    if module == "exporter.cli":
        # The demo and simulate commands may, inside their functions: serving never loads it.
        found = [f for f in found if f[2]]
    assert not found, f"{module} imports the simulator at lines {[f[0] for f in found]}"


def test_serving_does_not_load_the_simulator():
    code = (
        "import sys, exporter.cli; print([m for m in sys.modules if m.startswith('exporter.sim')])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


# ---- the checker itself can fail -------------------------------------------------------------


def test_the_import_reader_sees_nested_and_relative_imports():
    imports = {(t, top) for _, t, top in _imports("exporter.cli")}
    assert ("exporter.simulator", False) in imports  # inside a function
    assert ("exporter.logs", True) in imports  # `from exporter import logs`
    assert _stage("exporter.config.loader") == 1 and _stage("exporter.rocketchat.x") == 2
    assert _stage("exporter.newthing") is None
