"""`rocketchat-omnichannel-exporter backfill`: Rocket.Chat's history as timestamped OpenMetrics.

Day by day per server: fetch one server-local day through the real client (paced by
Rocket.Chat's rate limit), turn it into samples on a grid of instants (exporter/backfillday.py,
the live exporter's math), write it (exporter/backfill_output.py), forget it. Memory is one
day; a rerun skips the days already written. docs/backfill.md is the manual.

Exit codes: 0 done, 1 Rocket.Chat failed (the days written so far stay and a rerun resumes),
2 usage (bad arguments, configuration or output), 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import partial
from zoneinfo import ZoneInfo

from exporter import logs
from exporter.backfill_departments import department_series, live_agents
from exporter.backfill_output import Output, OutputError
from exporter.backfill_progress import Progress
from exporter.backfillday import DayInput, Grid, write_day
from exporter.config import Config, ConfigError, ServerConfig, load_config
from exporter.config.model import Staffing
from exporter.config.scalars import duration_value
from exporter.localtime import day_start, local_date
from exporter.model import AgentLive
from exporter.rocketchat import RocketChatError, Stopped
from exporter.rocketchat.client import RocketChatClient

log = logging.getLogger("exporter.backfill")

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
MAX_STEP = 300.0  # Prometheus's default lookback: samples further apart leave gaps
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_RESERVED = {"server", "agent"}


class UsageError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rocketchat-omnichannel-exporter backfill",
        description="Write Rocket.Chat's availability history as OpenMetrics with timestamps, "
        "for promtool tsdb create-blocks-from openmetrics (see docs/backfill.md).",
    )
    p.add_argument("--config.file", dest="config_file", default="config.yaml")
    p.add_argument(
        "--from",
        dest="start",
        required=True,
        help="first server-local day (YYYY-MM-DD), or an instant (RFC 3339 or unix seconds)",
    )
    p.add_argument(
        "--to",
        dest="end",
        default=None,
        help="last server-local day, included (YYYY-MM-DD), or an instant, excluded (RFC 3339 "
        "or unix seconds); default: the --until-existing instant, else today's local midnight",
    )
    p.add_argument(
        "--until-existing",
        dest="until_existing",
        default=None,
        metavar="TIMESTAMP",
        help="the first sample Prometheus already has (RFC 3339 or unix seconds): nothing at "
        "or after it is written unless --force-overlap",
    )
    p.add_argument("--force-overlap", action="store_true", help="allow --to past --until-existing")
    p.add_argument("--step", default="1m", help="sample spacing, 10s..5m (default 1m)")
    p.add_argument(
        "--output",
        default="backfill/",
        help="a directory (existing, or ending in /): one file per server and day; anything "
        "else: one file (default: backfill/)",
    )
    p.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="add a label to every series, e.g. job=... and instance=... as your scrape job "
        "attaches them, so backfilled and scraped series are the same series (repeatable)",
    )
    p.add_argument(
        "--server",
        action="append",
        default=[],
        help="only this configured server (repeatable; default: all)",
    )
    p.add_argument(
        "--progress",
        choices=("auto", "bar", "lines", "off"),
        default="auto",
        help="auto: a bar with ETA on a terminal, plain lines otherwise",
    )
    p.add_argument("--log.level", dest="log_level", default="info", choices=list(logs.LEVELS))
    return p


# ---- arguments ---------------------------------------------------------------------------


def parse_instant(text: str, what: str) -> float:
    """RFC 3339 (a zone required) or unix seconds."""
    value = text.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise UsageError(
            f"{what} {text!r}: not a date or an instant; use YYYY-MM-DD, RFC 3339 with a zone "
            "(2026-10-01T08:00:00Z) or unix seconds"
        )
    return moment.timestamp()


def resolve(text: str, tz: ZoneInfo, what: str, *, end: bool) -> float:
    """A --from/--to value as an instant: a date is its local midnight (the next one for
    --to, which includes the day)."""
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        return parse_instant(text, what)
    return day_start(day + timedelta(days=1) if end else day, tz)


def parse_step(text: str) -> int:
    seconds = duration_value(text, allow_plain=True)
    if seconds is None or seconds != int(seconds) or not 10 <= seconds <= MAX_STEP:
        raise UsageError(f"--step {text!r}: use whole seconds from 10s to 5m (e.g. 15s, 1m)")
    step = int(seconds)
    if 60 % step and step % 60:
        # Other steps put samples in the last second before midnight, where Rocket.Chat's
        # midnight split leaves a one-second hole only the next day's data can fill.
        raise UsageError(
            f"--step {text!r}: use a divisor of 1m (10s, 15s, 20s, 30s) or whole minutes"
        )
    return step


def parse_labels(items: Sequence[str]) -> tuple[tuple[str, str], ...]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not _LABEL.fullmatch(name) or name.startswith("__") or name in _RESERVED:
            raise UsageError(
                f"--label {item!r}: use NAME=VALUE with a Prometheus label name other than "
                "server, agent or __*, e.g. --label job=rocketchat-omnichannel"
            )
        out[name] = value
    return tuple(sorted(out.items()))


@dataclass(frozen=True)
class Plan:
    """One server's range: [start, end) and the server-local days it touches."""

    server: ServerConfig
    tz: ZoneInfo
    start: float
    end: float

    @property
    def days(self) -> list[date]:
        first = local_date(self.start, self.tz)
        last = local_date(self.end, self.tz)
        if day_start(last, self.tz) >= self.end:  # the range ends at that day's midnight
            last -= timedelta(days=1)
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]

    def cover(self, day: date) -> tuple[float, float]:
        lo = max(self.start, day_start(day, self.tz))
        return lo, min(self.end, day_start(day + timedelta(days=1), self.tz))


def plan(args: argparse.Namespace, server: ServerConfig, now: float) -> Plan:
    tz = ZoneInfo(server.timezone)
    start = resolve(args.start, tz, "--from", end=False)
    existing = (
        parse_instant(args.until_existing, "--until-existing") if args.until_existing else None
    )
    if args.end is not None:
        end = resolve(args.end, tz, "--to", end=True)
    elif existing is not None:
        end = existing
    else:
        end = day_start(local_date(now, tz), tz)
    if existing is not None and end > existing and not args.force_overlap:
        raise UsageError(
            f"--to {_show(end, tz)} overlaps what Prometheus already has from --until-existing "
            f"{_show(existing, tz)}: omit --to (it then stops there), or pass --force-overlap "
            "(docs/backfill.md: overlapping blocks)"
        )
    if end > now:
        raise UsageError(
            f"--to {_show(end, tz)} is in the future on server {server.name}: Rocket.Chat has "
            f"no history after now ({_show(now, tz)}); use an earlier --to or omit it"
        )
    if start >= end:
        raise UsageError(
            f"--from {_show(start, tz)} is not before --to {_show(end, tz)} on server "
            f"{server.name}: swap them or widen the range"
        )
    return Plan(server, tz, start, end)


def _show(t: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(t, tz).isoformat()


def settings(config: Config, plans: Sequence[Plan], step: int, labels) -> dict:
    """What the days written depend on, besides the range: a rerun must match it."""
    f = config.agents
    return {
        "step": step,
        "labels": labels,
        "agents": [
            f.include.pattern,
            f.exclude.pattern if f.exclude else None,
            f.per_agent,
            f.label,
            f.labels(["\x00probe"]).get("\x00probe"),  # changes with the hashed label key
        ],
        "servers": {
            p.server.name: [p.server.timezone, schedule_key(p.server.staffing)] for p in plans
        },
        # Only with departments on, so that an output written without them still resumes.
        **_department_settings(config, plans),
    }


def _department_settings(config: Config, plans: Sequence[Plan]) -> dict:
    if not config.departments.enabled:
        return {}
    select = config.departments.select
    return {
        "departments": [
            select if isinstance(select, str) else list(select),
            {
                p.server.name: [[name, schedule_key(s)] for name, s in p.server.department_staffing]
                for p in plans
            },
        ]
    }


def schedule_key(staffing: Staffing | None) -> str:
    """A schedule as the manifest keeps it: its repr, with the holidays in date order. A
    frozenset of dates prints in hash order, which changes from process to process (string
    hash randomisation), and a rerun must find the same settings."""
    text = repr(staffing)
    if staffing is None or len(staffing.holidays) < 2:
        return text  # already the same in every process
    ordered = "frozenset({" + ", ".join(map(repr, sorted(staffing.holidays))) + "})"
    return text.replace(repr(staffing.holidays), ordered, 1)


# ---- the run -----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None, *, clock: Callable[[], float] = time.time) -> int:
    args = build_parser().parse_args(argv)
    logs.setup(args.log_level, "logfmt")
    try:
        config = load_config(args.config_file)
    except ConfigError as exc:
        print(f"error: {args.config_file}: invalid configuration:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        step = parse_step(args.step)
        labels = parse_labels(args.label)
        if config.departments.enabled and any(k == "department" for k, _ in labels):
            raise UsageError(
                "--label department=...: with departments on, the department series carry "
                "their own department label; choose another label name"
            )
        servers = _servers(config, args.server)
        now = clock()
        plans = [plan(args, s, now) for s in servers]
        output = Output(args.output, settings(config, plans, step, labels))
    except (UsageError, OutputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    todo = sum(len(p.days) for p in plans)
    progress = Progress(todo, args.progress, sys.stderr)
    try:
        for p in plans:
            _backfill_server(config, p, step, labels, output, progress, now)
        progress.close()
        written = output.finish([output.key(p.server.name, d) for p in plans for d in p.days])
    except UsageError as exc:
        progress.close()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RocketChatError as exc:
        progress.close()
        print(f"error: {exc}\n{_resume_hint(output)}", file=sys.stderr)
        return 1
    except OSError as exc:
        progress.close()
        print(f"error: writing {args.output}: {exc}\n{_resume_hint(output)}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Stopped):
        progress.close()
        print(f"interrupted. {_resume_hint(output)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    where = written or output.dir
    print(f"backfill: {todo} days in {where}; next: docs/backfill.md step 2 (promtool)")
    return 0


def _servers(config: Config, names: Sequence[str]) -> list[ServerConfig]:
    if not names:
        return list(config.servers)
    known = {s.name: s for s in config.servers}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(
            f"--server {', '.join(unknown)}: not in the configuration (servers: {', '.join(known)})"
        )
    return [known[n] for n in dict.fromkeys(names)]


def _resume_hint(output: Output) -> str:
    return f"{len(output.days)} days are done; rerun the same command to resume from there."


def _backfill_server(config, p: Plan, step, labels, output: Output, progress, now) -> None:
    name = p.server.name
    days = p.days
    left = [d for d in days if output.done(name, d, p.cover(d)) is None]
    for d in days:
        if d not in left:
            progress.day(name, d, "already written", False)
    if not left:
        return
    client = RocketChatClient(p.server, on_wait=progress.waiting)
    try:
        client.fetch_info()  # the version decides whether the history route may be paged
        if not any(_written(output, p, d) for d in days):  # else history is known to exist
            _check_range(client, p, days)
        if local_date(now, p.tz) in left:
            log.warning(
                "the range reaches into today: sessions still open are not in Rocket.Chat's "
                "history yet, so the last hours may show fewer agents than were available",
                extra={"server": name},
            )
        live = live_agents(client, config)  # one request, only where names or departments need it
        names = _display_names(config, live)
        departments = department_series(client, config, p.server, live)
        # Days before the first day with any history (in this range) are not written: there
        # 0 would be a claim (nobody available) where Rocket.Chat simply kept nothing.
        started = any(_written(output, p, d) for d in days if d < left[0])
        for d in left:
            cover = p.cover(d)
            history = client.fetch_history_day(d)
            if not started and not history.agents and not history.total:
                output.skip_day(name, d, cover, "before the first day with history")
                progress.day(name, d, "no history yet (skipped)", True)
                continue
            started = True
            inp = DayInput(
                name,
                p.tz,
                history,
                Grid.between(cover[0], cover[1], step),
                p.server.staffing,
                config.agents,
                names,
                labels,
                departments,
            )
            output.write_day(name, d, cover, partial(write_day, inp))
            del history, inp
            progress.day(name, d, "written", True)
    finally:
        client.close()


def _written(output: Output, p: Plan, day: date) -> bool:
    """Whether the day is finished with a file (not skipped as before the history)."""
    return bool((output.done(p.server.name, day, p.cover(day)) or {}).get("file"))


def _check_range(client: RocketChatClient, p: Plan, days: Sequence[date]) -> None:
    """One request for the whole range: does Rocket.Chat keep anything at all for it?"""
    if client.history_total(days[0], days[-1]) == 0:
        raise UsageError(
            f"server {p.server.name}: Rocket.Chat has no availability history from "
            f"{days[0]} to {days[-1]} (no agent has an activity document in that range): it "
            "keeps history only from the day agents first went available in Omnichannel, and "
            "deleted users' history is gone; choose a later --from (docs/backfill.md)"
        )


def _display_names(config: Config, live: Sequence[AgentLive] | None) -> dict[str, str]:
    """Display names, only for agents.label: name (as the live exporter shows them)."""
    if not config.agents.per_agent or config.agents.label != "name":
        return {}
    return {a.username: a.name for a in live or () if a.name}
