"""The performance benchmark: what the exporter costs Rocket.Chat, the CPU and memory it needs,
and how fast it answers a scrape, each figure next to a baseline measured in the same run.

Run from the repository root (everything binds 127.0.0.1; nothing else is needed)::

    .venv/bin/python -m tests.benchmarks --json benchmark.json
    .venv/bin/python -m tests.benchmarks --sizes S,M      # a quick run

Each size runs in a fresh subprocess (so peak RSS is that size's own) against the simulator
in a second subprocess. Both read one shared fake clock: the client's rate-limit waits advance
it instead of sleeping, so Rocket.Chat's default limit (10 calls per 60 s per route) is
enforced for real while a 40-minute initial fill takes seconds. See `cli.py` for the options
and `worker.py` for what is measured and how. `--baseline REV` (default 890e188, version 0.1)
measures that commit's exporter/ in the same run, side by side (compat.py); the scrape floor is
nginx (nginx.py); docs/performance.md has the figures.

Not part of the normal test run (no file here is named test_*.py);
tests/test_benchmark_smoke.py runs size S for a few polls so this cannot rot.
"""
