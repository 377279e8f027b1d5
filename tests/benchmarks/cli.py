"""`python -m tests.benchmarks`: run the sizes, print the table, write the JSON."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import report, sizes

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BASELINE = "890e188"  # version 0.1, before the performance round (issue 10)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tests.benchmarks",
        description="Benchmark the exporter against the simulated Rocket.Chat on 127.0.0.1.",
    )
    p.add_argument(
        "--sizes",
        default=",".join(sizes.DEFAULT_SIZES),
        help="comma-separated sizes from "
        + ", ".join(f"{s.name}={s.agents}" for s in sizes.SIZES.values()),
    )
    p.add_argument("--json", dest="json_path", help="also write all figures to this file")
    p.add_argument("--polls", type=int, default=5, help="steady-state polls per size (5)")
    p.add_argument(
        "--growth-polls",
        type=int,
        default=1000,
        help="polls of the memory-growth run (1000; 0 skips it)",
    )
    p.add_argument("--growth-size", default="M", help="size of the memory-growth run (M)")
    p.add_argument("--scrape-seconds", type=float, default=3.0, help="scraping time per server (3)")
    p.add_argument(
        "--scrape-min", type=int, default=3, help="scrapes per scraper thread at least (3)"
    )
    p.add_argument(
        "--baseline",
        default=DEFAULT_BASELINE,
        help="git revision whose exporter/ is measured in the same run, side by side "
        f"({DEFAULT_BASELINE}: version 0.1; 'none' skips it)",
    )
    p.add_argument(
        "--servers", default="1,2,4,8", help="server counts in one process (1,2,4,8; '' skips)"
    )
    p.add_argument("--servers-size", default="L", help="size of each of those servers (L)")
    p.add_argument("--servers-rounds", type=int, default=3, help="polls per server and N (3)")
    p.add_argument("--worker", choices=["size", "growth", "servers"], help=argparse.SUPPRESS)
    p.add_argument("--size", help=argparse.SUPPRESS)
    p.add_argument("--code", default="new", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker:
        return _worker(args)
    names = [s.strip().upper() for s in args.sizes.split(",") if s.strip()]
    unknown = [n for n in (*names, args.growth_size, args.servers_size) if n not in sizes.SIZES]
    if unknown:
        print(f"error: --sizes: unknown size {unknown}", file=sys.stderr)
        return 2
    try:
        counts = [int(n) for n in args.servers.split(",") if n.strip()]
    except ValueError:
        counts = [0]
    if any(n < 1 for n in counts):
        print("error: --servers: use positive counts, e.g. 1,2,4,8", file=sys.stderr)
        return 2
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-baseline-") as tmp:
        baseline = None
        if args.baseline.lower() != "none":
            baseline = _extract(args.baseline, Path(tmp))
            if baseline is None:
                print(
                    f"error: --baseline: {args.baseline!r} is not a commit of this repository"
                    " with an exporter/ directory (or 'none')",
                    file=sys.stderr,
                )
                return 2
        codes = [("new", None)] + ([("old", baseline)] if baseline else [])
        runs = {code: [_spawn(args, "size", n, code, path) for n in names] for code, path in codes}
        servers = (
            {code: _spawn(args, "servers", args.servers_size, code, path) for code, path in codes}
            if counts
            else {}
        )
    growth = _spawn(args, "growth", args.growth_size) if args.growth_polls > 0 else None
    machine = machine_info()
    out = {
        "command": "python -m tests.benchmarks " + " ".join(argv or sys.argv[1:]),
        "machine": machine,
        "baseline": {"rev": args.baseline, "commit": baseline and _git("rev-parse", args.baseline)},
        "results": runs["new"],
        "baseline_results": runs.get("old", []),
        "servers": servers.get("new"),
        "baseline_servers": servers.get("old"),
        "growth": growth,
        "scaling_exponent": report.scaling(runs["new"]),
        "baseline_scaling_exponent": report.scaling(runs.get("old", [])),
        "wall_seconds": time.perf_counter() - started,
    }
    print(report.table(out))
    print(f"Benchmark wall time: {out['wall_seconds']:.0f} s")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


def _extract(rev: str, tmp: Path) -> str | None:
    """The baseline's exporter/ (`git archive REV exporter | tar -x`) in tmp; None if absent."""
    if not _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"):
        return None
    archive = subprocess.run(
        ["git", "archive", rev, "exporter"], cwd=ROOT, capture_output=True, timeout=60
    )
    if archive.returncode != 0:
        return None
    subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive.stdout, check=True, timeout=60)
    return str(tmp) if (tmp / "exporter" / "__init__.py").exists() else None


def _spawn(
    args: argparse.Namespace, kind: str, name: str, code: str = "new", path: str | None = None
) -> dict[str, Any]:
    """Run one size in a fresh interpreter, so peak RSS and caches are its own. `path`: a
    baseline's code, first on the worker's path (the simulator child drops it again)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        cmd = [sys.executable, "-m", "tests.benchmarks", "--worker", kind, "--size", name]
        cmd += ["--code", code, "--out", out, "--polls", str(args.polls)]
        cmd += ["--growth-polls", str(args.growth_polls), "--servers", args.servers]
        cmd += ["--servers-rounds", str(args.servers_rounds)]
        cmd += ["--scrape-seconds", str(args.scrape_seconds), "--scrape-min", str(args.scrape_min)]
        paths = [path, str(ROOT), os.environ.get("PYTHONPATH")]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, paths)))
        env["BENCH_BASELINE_PATH"] = path or ""
        subprocess.run(cmd, cwd=ROOT, env=env, check=True)
        return json.loads(Path(out).read_text(encoding="utf-8"))


def _worker(args: argparse.Namespace) -> int:
    from . import simproc

    baseline = os.environ.get("BENCH_BASELINE_PATH")
    if baseline:
        # `python -m` puts the working directory (main's exporter/) first: the baseline
        # goes before it, ahead of any import of `exporter`.
        assert "exporter" not in sys.modules
        sys.path.insert(0, baseline)
        # An editable install's finder would serve main's modules missing from the baseline
        # (exporter.rocketchat, ...) as if they were the baseline's: not in this process.
        sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
        simproc.BASELINE_PATH.append(baseline)
    from . import compat, worker

    if args.code == "old" and not compat.CODE_PATH.startswith(baseline or "?"):
        raise RuntimeError(f"the baseline's code was not imported: {compat.CODE_PATH}")

    def say(msg: str) -> None:
        print(f"[bench {args.code}] {msg}", file=sys.stderr, flush=True)

    if args.worker == "size":
        result = worker.run_size(
            args.size, args.polls, args.scrape_seconds, args.scrape_min, say, args.code
        )
    elif args.worker == "servers":
        counts = [int(n) for n in args.servers.split(",")]
        result = worker.run_servers(args.size, counts, args.servers_rounds, progress=say)
        result["code"] = args.code
    else:
        result = worker.run_growth(args.size, args.growth_polls, progress=say)
    Path(args.out).write_text(json.dumps(result), encoding="utf-8")
    return 0


def machine_info() -> dict[str, Any]:
    model = "unknown CPU"
    ram = 0.0
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next(
                (line.split(":", 1)[1].strip() for line in f if line.startswith("model name")),
                model,
            )
        with open("/proc/meminfo", encoding="utf-8") as f:
            kib = next(int(line.split()[1]) for line in f if line.startswith("MemTotal"))
            ram = kib / 1024 / 1024
    except (OSError, StopIteration, ValueError):
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "ram_gib": ram,
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        "commit": _git("rev-parse", "--short", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no", "--", "exporter")),
    }


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
