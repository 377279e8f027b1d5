"""The rendered /metrics page equals tests/golden/metrics.txt byte for byte (see tests/golden)."""

from __future__ import annotations

import difflib

from tests.golden import GOLDEN, render


def test_the_page_equals_the_golden_file():
    page = render()
    assert render() == page, "the golden page must be reproducible: two renders differ"
    golden = GOLDEN.read_bytes()
    if page != golden:
        diff = "".join(
            difflib.unified_diff(
                golden.decode().splitlines(keepends=True),
                page.decode().splitlines(keepends=True),
                "tests/golden/metrics.txt",
                "rendered now",
                n=1,
            )
        )
        raise AssertionError(
            "the exposition changed; if that is meant, run `python -m tests.golden` and "
            f"commit tests/golden/metrics.txt\n{diff[:6000]}"
        )
