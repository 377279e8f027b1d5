"""Build the Grafana dashboards in grafana/dashboards/ (the JSON there is generated: edit dashgen/).

    python grafana/generate.py          # rewrite grafana/dashboards/*.json
    python grafana/generate.py --check  # exit 1 if the committed JSON is not what this builds

The definitions are in dashgen/: toolkit.py (panels, queries, variables, the dashboard frame)
and one module per dashboard (staffing.py with its queue.py row, agent.py). Standard library
only. The output works with file provisioning, the Grafana dashboard sidecar and manual import
alike: every panel and query names the data source through the `datasource` variable (no
`__inputs`), and each dashboard has a fixed `uid` so links and bookmarks survive re-imports.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "dashboards"

# The dashboards live in grafana/dashgen/ (a toolkit plus one module per dashboard). This file
# is run as a script or loaded by path from the tests, so make its own directory importable.
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from dashgen.agent import agent_dashboard  # noqa: E402
from dashgen.staffing import staffing_dashboard  # noqa: E402

# ---- output ------------------------------------------------------------------------------------

DASHBOARDS = {
    "rocketchat-omnichannel-staffing.json": staffing_dashboard,
    "rocketchat-omnichannel-agent.json": agent_dashboard,
}


def render(build: Any) -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def rendered() -> dict[str, str]:
    """File name -> JSON text, exactly as committed."""
    return {name: render(build) for name, build in DASHBOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if the JSON is out of date")
    args = parser.parse_args(argv)
    stale = []
    for name, text in rendered().items():
        path = OUT_DIR / name
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(name)
        if not args.check:
            OUT_DIR.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if args.check and stale:
        print(f"out of date, run python grafana/generate.py: {', '.join(stale)}", file=sys.stderr)
        return 1
    for name in stale:
        print(f"wrote {OUT_DIR / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
