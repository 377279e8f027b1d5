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
    p.add_argument("--worker", choices=["size", "growth"], help=argparse.SUPPRESS)
    p.add_argument("--size", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker:
        return _worker(args)
    names = [s.strip().upper() for s in args.sizes.split(",") if s.strip()]
    unknown = [n for n in names if n not in sizes.SIZES]
    if unknown or args.growth_size not in sizes.SIZES:
        print(f"error: --sizes: unknown size {unknown or args.growth_size}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    results = [_spawn(args, "size", name) for name in names]
    growth = _spawn(args, "growth", args.growth_size) if args.growth_polls > 0 else None
    machine = machine_info()
    out = {
        "command": "python -m tests.benchmarks " + " ".join(argv or sys.argv[1:]),
        "machine": machine,
        "results": results,
        "growth": growth,
        "scaling_exponent": report.scaling(results),
        "wall_seconds": time.perf_counter() - started,
    }
    print(report.table(results, growth, machine))
    print(f"Benchmark wall time: {out['wall_seconds']:.0f} s")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


def _spawn(args: argparse.Namespace, kind: str, name: str) -> dict[str, Any]:
    """Run one size in a fresh interpreter, so peak RSS and caches are its own."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        cmd = [
            sys.executable,
            "-m",
            "tests.benchmarks",
            "--worker",
            kind,
            "--size",
            name,
            "--out",
            out,
            "--polls",
            str(args.polls),
            "--growth-polls",
            str(args.growth_polls),
            "--scrape-seconds",
            str(args.scrape_seconds),
            "--scrape-min",
            str(args.scrape_min),
        ]
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        )
        subprocess.run(cmd, cwd=ROOT, env=env, check=True)
        return json.loads(Path(out).read_text(encoding="utf-8"))


def _worker(args: argparse.Namespace) -> int:
    from . import worker

    def say(msg: str) -> None:
        print(f"[bench] {msg}", file=sys.stderr, flush=True)

    if args.worker == "size":
        result = worker.run_size(
            args.size, args.polls, args.scrape_seconds, args.scrape_min, progress=say
        )
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
