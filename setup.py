"""Build hook only (metadata lives in pyproject.toml): stamp the git revision and build date.

When a wheel is built, `build_py` writes exporter/_build.py into the build directory (never
into the source tree) with the commit the wheel is built from and the build time, for
`--version` and build_info. The revision comes from $SOURCE_REVISION if set (e.g. a container
build without .git: --build-arg), else from `git rev-parse HEAD` if this is a checkout, else
"unknown". SOURCE_DATE_EPOCH, if set, fixes the build date (reproducible builds).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


def _revision() -> str:
    rev = os.environ.get("SOURCE_REVISION", "").strip()
    if rev:
        return rev
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out or "unknown"


def _build_date() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    when = time.gmtime(int(epoch)) if epoch.isdigit() else time.gmtime()
    return time.strftime("%Y%m%d-%H:%M:%S", when)


class BuildPyWithBuildInfo(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "exporter" / "_build.py"
        target.write_text(
            '"""Written by setup.py at build time."""\n\n'
            f"REVISION = {_revision()!r}\nBUILD_DATE = {_build_date()!r}\n",
            encoding="utf-8",
        )


setup(cmdclass={"build_py": BuildPyWithBuildInfo})
