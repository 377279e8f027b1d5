"""What backfill costs: days per second and peak RSS at 500 and 5,000 agents, short and long.

    .venv/bin/python -m tests.benchmarks.backfill [--agents 500 5000] [--days 2 6] [--step 1m]

For each size the simulator runs as its own process (`simulate`, rate limit off, generated
history), and the real `backfill` command runs as another, against it over 127.0.0.1, writing
one file per day to a temporary directory (deleted afterwards). Printed per run: days, wall
seconds, days per second, the backfill process's peak RSS (from wait4), bytes written per day.
The baseline is the shortest range at the same size, measured in the same run: memory that
stays flat as the range grows (RSS ratio ~1) is what "day by day" means. Figures, not
assertions. Rocket.Chat's rate limit (10 requests/min by default) makes a real backfill take at
least 6 s per day whatever these figures say, unless the user has api-bypass-rate-limit.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from tests.support.procs import free_port, http_get, wait_for

CONFIG = """\
windows: [1h]
staffing:
  default: 2
  rules:
    - days: [mon, tue, wed, thu, fri]
      from: "08:00"
      to: "18:00"
      agents: 50
servers:
  - name: bench
    url: {url}
    user_id: sim-user
    auth_token: sim-token
    timezone: UTC
    timeout: 120s
"""


def start_simulator(agents: int, days: int, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    out = open(log, "wb")  # noqa: SIM115 - the process keeps it
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exporter",
            "simulate",
            "--listen",
            f"127.0.0.1:{port}",
            "--agents",
            str(agents),
            "--days",
            str(days + 1),
            "--rate-limit",
            "0",
            "--timezone",
            "UTC",
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: http_get(url + "/api/info")[0] == 200, 60, "simulator")
    return proc, url


def run_backfill(config: Path, days: int, step: str, out: Path) -> dict[str, float]:
    today = date.today()  # the simulator runs on real time too (UTC)
    first = today - timedelta(days=days)
    args = [
        sys.executable,
        "-m",
        "exporter",
        "backfill",
        "--config.file",
        str(config),
        "--from",
        first.isoformat(),
        "--to",
        (today - timedelta(days=1)).isoformat(),
        "--step",
        step,
        "--output",
        f"{out}/",
        "--progress",
        "off",
    ]
    started = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"backfill failed: {err}")
    written = sum(f.stat().st_size for f in out.glob("*.om"))
    return {
        "days": days,
        "wall": wall,
        "days_per_s": days / wall,
        "rss_mib": usage.ru_maxrss / 1024,
        "mib_per_day": written / days / 2**20,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.benchmarks.backfill")
    p.add_argument("--agents", type=int, nargs="+", default=[500, 5000])
    p.add_argument("--days", type=int, nargs="+", default=[2, 6], help="ranges, shortest first")
    p.add_argument("--step", default="1m")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp:
        base = Path(tmp)
        for agents in args.agents:
            sim, url = start_simulator(agents, max(args.days), base / f"sim-{agents}.log")
            try:
                config = base / f"config-{agents}.yaml"
                config.write_text(CONFIG.format(url=url))
                baseline = None
                for days in sorted(args.days):
                    out = base / f"out-{agents}-{days}"
                    r = run_backfill(config, days, args.step, out)
                    shutil.rmtree(out)
                    baseline = baseline or r
                    r["rss_ratio"] = r["rss_mib"] / baseline["rss_mib"]
                    r["agents"] = agents
                    rows.append(r)
                    if len(rows) == 1:
                        print(_header())
                    print(_row(r), flush=True)
            finally:
                sim.terminate()
                sim.wait(10)
    return 0


def _header() -> str:
    return (
        f"{'agents':>7} {'days':>5} {'wall s':>8} {'days/s':>7} {'peak RSS MiB':>13} "
        f"{'RSS vs shortest':>16} {'MiB/day':>8}"
    )


def _row(r: dict[str, float]) -> str:
    return (
        f"{r['agents']:>7} {r['days']:>5} {r['wall']:>8.1f} {r['days_per_s']:>7.2f} "
        f"{r['rss_mib']:>13.1f} {r['rss_ratio']:>16.2f} {r['mib_per_day']:>8.1f}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
