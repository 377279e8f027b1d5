"""Version, revision and build date of this exporter, for `--version` and build_info.

A wheel built by setup.py carries exporter/_build.py (the git commit it was built from and
the build time). Run from a git checkout without it (an editable install), the revision is
the checkout's HEAD; otherwise "unknown".
"""

from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path

from exporter import __version__

UNKNOWN = "unknown"


@functools.cache
def revision() -> str:
    try:
        from exporter import _build  # type: ignore[attr-defined]  # written at build time

        return str(_build.REVISION) or UNKNOWN
    except ImportError:
        pass
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():  # a directory, or a file in a git worktree
        return UNKNOWN
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    return out or UNKNOWN


@functools.cache
def build_date() -> str:
    try:
        from exporter import _build  # type: ignore[attr-defined]

        return str(_build.BUILD_DATE) or UNKNOWN
    except ImportError:
        return UNKNOWN


def version_text(program: str) -> str:
    """Like `prometheus --version`."""
    return (
        f"{program}, version {__version__} (revision: {revision()})\n"
        f"  build date:       {build_date()}\n"
        f"  python version:   {platform.python_version()}\n"
        f"  platform:         {platform.system().lower()}/{platform.machine()}"
    )
