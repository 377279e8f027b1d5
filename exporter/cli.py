"""Command line: serve (default), check-config, once, demo, simulate; each with its own --help."""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from exporter import __version__, daystore, logs
from exporter.buildinfo import version_text
from exporter.config import Config, ConfigError, load_config
from exporter.poller import ServerPoller, start_pollers
from exporter.process_metrics import SelfMetrics
from exporter.publisher import Publisher
from exporter.web import WebServer, parse_listen_address
from exporter.webconfig import WebConfigError, WebGuard
from exporter.weblisten import DEFAULT_MAX_CONNECTIONS, FD_RESERVE, fd_reserve

log = logging.getLogger("exporter")

EXIT_CONFIG = 2
PROG = "rocketchat-omnichannel-exporter"
DEFAULT_LISTEN = ":9875"
DEMO_LISTEN = "127.0.0.1:9875"  # the demo is for one person's browser: loopback only


@dataclass(frozen=True)
class Command:
    name: str
    summary: str  # one line, in the general --help
    description: str  # the command's own --help
    own_flags: bool = True  # False: simulate and backfill parse their own options


COMMANDS = (
    Command(
        "serve",
        "poll Rocket.Chat and serve /metrics (the default command)",
        "Poll every configured Rocket.Chat server in the background and serve the metrics "
        "on --web.listen-address. A bad configuration exits with code 2 before serving.",
    ),
    Command(
        "check-config",
        "validate the configuration and exit (2 if invalid)",
        "Validate --config.file (and --web.config.file, if given) and print a summary without "
        "secrets. Exit code 0 if valid, 2 if not, naming each bad key and the fix.",
    ),
    Command(
        "once",
        "poll once, print the exposition to stdout (exit 1 if the poll failed)",
        "Poll every configured server once, print the metrics page to stdout and exit: 0 if "
        "every poll succeeded, 1 if one failed (the reason is logged), 2 for a bad config. "
        "The --web.* flags are accepted and not used.",
    ),
    Command(
        "demo",
        "serve metrics from a built-in simulated Rocket.Chat (no server needed)",
        "Start a simulated Rocket.Chat with 50 agents in-process and the exporter against it "
        f"over real HTTP, on {DEMO_LISTEN} unless --web.listen-address says otherwise. "
        "--config.file is not used: the demo writes its own.",
    ),
    Command(
        "backfill",
        "past days as OpenMetrics for Prometheus' backfill (see 'backfill --help')",
        "Backfill Prometheus from Rocket.Chat's history (docs/backfill.md).",
        own_flags=False,
    ),
    Command(
        "simulate",
        "run the simulated Rocket.Chat alone (see 'simulate --help')",
        "Serve a simulated Rocket.Chat for demos and tests.",
        own_flags=False,
    ),
)


def _add_config_flag(p: argparse.ArgumentParser, default: object) -> None:
    p.add_argument(
        "--config.file",
        dest="config_file",
        default=default,
        help="path to the YAML configuration (default: config.yaml)",
    )


def _add_web_flags(p: argparse.ArgumentParser, default: object) -> None:
    top = default is None  # the main parser holds the defaults; a command's parser SUPPRESSes
    p.add_argument(
        "--web.listen-address",
        dest="listen",
        metavar="ADDRESS",
        action="append",
        default=default,
        help=f"address to listen on, repeatable: one listener each (default: {DEFAULT_LISTEN}, "
        f"all interfaces, IPv6 and IPv4; demo: {DEMO_LISTEN}; e.g. [::1]:9875)",
    )
    p.add_argument(
        "--web.telemetry-path",
        dest="telemetry_path",
        metavar="PATH",
        default="/metrics" if top else default,
        help="path under which to expose metrics (default: /metrics)",
    )
    p.add_argument(
        "--web.max-connections",
        dest="max_connections",
        metavar="N",
        type=int,
        default=DEFAULT_MAX_CONNECTIONS if top else default,
        help=f"most HTTP connections open at once (default: {DEFAULT_MAX_CONNECTIONS}; lowered "
        f"to keep {FD_RESERVE} fds + 2 per server free under the fd limit); at the cap the "
        "longest-idle one is closed",
    )
    p.add_argument(
        "--web.config.file",
        dest="web_config",
        default=default,
        help="optional TLS / basic auth configuration for the exporter's endpoint",
    )


def _add_log_flags(p: argparse.ArgumentParser, default: object) -> None:
    p.add_argument(
        "--log.level",
        dest="log_level",
        default="info" if default is None else default,
        choices=list(logs.LEVELS),
        help="log level (default: info)",
    )
    p.add_argument(
        "--log.format",
        dest="log_format",
        default="logfmt" if default is None else default,
        choices=["logfmt", "json"],
        help="log line format (default: logfmt)",
    )


class _Version(argparse.Action):
    """--version as Prometheus prints it: several lines, not rewrapped by argparse."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        print(version_text(PROG))
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """Flags are accepted before the command (where they have their defaults) and after it
    (SUPPRESS: a command's parser must not reset what was given before it)."""
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Prometheus exporter for Rocket.Chat Omnichannel agent availability.",
        epilog=f"Run '{PROG} COMMAND --help' for a command's own options.",
    )
    _add_config_flag(p, "config.yaml")
    _add_web_flags(p, None)
    _add_log_flags(p, None)
    p.add_argument("--version", action=_Version, help="print version and build information")
    sub = p.add_subparsers(dest="command", title="commands", metavar="[COMMAND]")
    p.set_defaults(
        command="serve", skip_secrets=False, passthrough_args=[]
    )  # after: sets sub's too
    for cmd in COMMANDS:
        if not cmd.own_flags:
            sp = sub.add_parser(cmd.name, help=cmd.summary, add_help=False)
            sp.add_argument("passthrough_args", nargs=argparse.REMAINDER)
            continue
        sp = sub.add_parser(cmd.name, help=cmd.summary, description=cmd.description)
        # Every command takes the common flags, as before there were subparsers (scripts pass
        # the same set to each); the description says which ones it uses.
        _add_config_flag(sp, argparse.SUPPRESS)
        _add_web_flags(sp, argparse.SUPPRESS)
        if cmd.name == "check-config":
            sp.add_argument(
                "--skip-secrets",
                action="store_true",
                default=argparse.SUPPRESS,
                help="do not require the secret files (user_id_file, auth_token_file, "
                "ca_file, agents.label_key_file) to exist yet: check a config before its "
                "Secret is mounted",
            )
        _add_log_flags(sp, argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in PASSTHROUGH:
        return PASSTHROUGH[argv[0]](argv[1:])
    args = build_parser().parse_args(argv)
    if args.command in PASSTHROUGH:  # flags before the command, e.g. --log.level debug simulate
        return PASSTHROUGH[args.command](args.passthrough_args)
    logs.setup(args.log_level, args.log_format)
    guard = None
    if args.web_config:
        try:
            guard = WebGuard(args.web_config)
        except WebConfigError as exc:
            print(f"error: {args.web_config}: invalid web configuration:\n{exc}", file=sys.stderr)
            return EXIT_CONFIG
    if args.command == "demo":
        return demo(args, guard)
    if args.command == "check-config" and args.skip_secrets:
        code = check_config_without_secrets(args.config_file)
        if code == 0 and guard is not None:
            print(f"web config {args.web_config}: {guard.config.describe()}")
        return code
    try:
        config = load_config(args.config_file)
        if args.command != "check-config":  # it may run elsewhere than the exporter
            daystore.check_cache_dir(config)
    except ConfigError as exc:
        print(f"error: {args.config_file}: invalid configuration:\n{exc}", file=sys.stderr)
        if args.command == "check-config" and all(map(is_secret_file_problem, exc.errors)):
            print(
                "(only secret files are missing: --skip-secrets checks the rest)", file=sys.stderr
            )
        return EXIT_CONFIG
    if args.command == "check-config":
        print(describe(config))
        if guard is not None:
            print(f"web config {args.web_config}: {guard.config.describe()}")
        return 0
    warn_insecure(config)
    if args.command == "once":
        return once(config)
    return serve(config, args.listen, guard=guard, **web_options(args))


def _simulate(argv: list[str]) -> int:
    from exporter.simulator.cli import main as simulate  # the simulator is demo/test only

    return simulate(argv)


def _backfill(argv: list[str]) -> int:
    from exporter.backfill import main as backfill  # its own options: docs/backfill.md

    return backfill(argv)


PASSTHROUGH = {"simulate": _simulate, "backfill": _backfill}


# `*_file` keys whose file may legitimately not exist yet when a config is checked before
# deployment (a Kubernetes Secret mounted at run time), and the loader's messages for a
# missing, unreadable or empty file. Everything else the loader reports is still an error.
_SECRET_FILE_PROBLEM = re.compile(
    r"(?:servers\[\d+\]\.(?:user_id_file|auth_token_file|ca_file)|agents\.label_key_file): "
    r"(?:file not found: .*|cannot read .*|.* is empty|.* is not UTF-8 text)",
    re.DOTALL,
)


def check_config_without_secrets(path: str) -> int:
    """check-config --skip-secrets: every check except that the secret files can be read."""
    try:
        config = load_config(path)
    except ConfigError as exc:
        skipped = [e for e in exc.errors if is_secret_file_problem(e)]
        errors = [e for e in exc.errors if not is_secret_file_problem(e)]
        if errors:
            print(f"error: {path}: invalid configuration:\n" + "\n".join(errors), file=sys.stderr)
            return EXIT_CONFIG
        print("configuration is valid apart from the secret files, which were not checked:")
        for e in skipped:
            print(f"  {e}")
        return 0
    print(describe(config))
    return 0


def is_secret_file_problem(error: str) -> bool:
    """Whether a ConfigError line is only about a secret file that cannot be read (yet)."""
    return _SECRET_FILE_PROBLEM.fullmatch(error) is not None


def describe(config: Config) -> str:
    """A summary of a valid config, without secrets."""
    lines = [
        "configuration is valid",
        f"poll_interval: {config.poll_interval:g}s, max_staleness: {config.max_staleness:g}s",
        "windows: " + ", ".join(w.name for w in config.windows),
    ]
    for s in config.servers:
        staffing = "staffing schedule" if s.staffing else "no staffing schedule"
        lines.append(f"server {s.name}: {s.url} (timezone {s.timezone}, {staffing})")
    return "\n".join(lines)


def warn_insecure(config: Config) -> None:
    """Say loudly, at every start, which servers are polled without checking their certificate."""
    for s in config.servers:
        if not s.verify_tls:
            log.warning(
                "TLS certificate verification is OFF for this server (verify_tls: false): anyone "
                "on the network path can read the auth token; set ca_file to the CA that signed "
                "Rocket.Chat's certificate instead",
                extra={"server": s.name, "url": s.url},
            )


def once(config: Config) -> int:
    publisher = Publisher([s.name for s in config.servers], config.max_staleness)
    stop = threading.Event()
    ok = True
    for server in config.servers:
        poller = ServerPoller(server, config, publisher, stop=stop)
        try:
            ok = poller.run_poll() and ok
        finally:
            poller.close()
    sys.stdout.buffer.write(publisher.page(time.time()) + SelfMetrics().render())
    sys.stdout.flush()
    return 0 if ok else 1


def web_options(args: argparse.Namespace) -> dict:
    return {"telemetry_path": args.telemetry_path, "max_connections": args.max_connections}


def serve(
    config: Config,
    listen: str | Sequence[str] | None,
    stop: threading.Event | None = None,
    guard: WebGuard | None = None,
    telemetry_path: str = "/metrics",
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    on_listening: Callable[[WebServer], None] | None = None,
) -> int:
    listen = [listen] if isinstance(listen, str) else list(listen or [":9875"])
    try:
        addresses = [parse_listen_address(a) for a in listen]
        _check_web_options(telemetry_path, max_connections)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    stop = stop or threading.Event()
    publisher = Publisher([s.name for s in config.servers], config.max_staleness)
    try:
        web = WebServer(
            addresses,
            publisher,
            guard=guard,
            telemetry_path=telemetry_path,
            max_connections=max_connections,
            fd_reserve=fd_reserve(len(config.servers)),
        )
    except OSError as exc:
        print(f"error: --web.listen-address {' '.join(listen)}: {exc.strerror}", file=sys.stderr)
        return 1
    _install_signal_handlers(stop)
    web.start()
    log.info(
        "listening",
        extra={
            "address": " ".join(web.addresses),
            "port": web.port,
            "max_connections": web.max_connections,
            "connection_cap": web.cap_reason,
            "scheme": web.scheme,
            "web": guard.config.describe() if guard is not None else "TLS off, no basic auth",
            "version": __version__,
        },
    )
    if web.max_connections < max_connections:
        log.warning("--web.max-connections lowered", extra={"reason": web.cap_reason})
    if on_listening is not None:
        on_listening(web)
    start_pollers(config, publisher, stop)
    stop.wait()
    log.info("shutting down")
    web.stop()
    return 0


def _check_web_options(telemetry_path: str, max_connections: int) -> None:
    if not telemetry_path.startswith("/") or telemetry_path in ("/", "/healthz", "/readyz"):
        raise ValueError(
            f"--web.telemetry-path: {telemetry_path!r} must start with '/' and not be '/', "
            "'/healthz' or '/readyz' (e.g. /metrics)"
        )
    if max_connections < 1:
        raise ValueError(f"--web.max-connections: {max_connections} must be at least 1 (e.g. 64)")


def _install_signal_handlers(stop: threading.Event) -> None:
    def handle(signum, _frame):
        stop.set()

    def hangup(signum, _frame):
        # SIGHUP would otherwise end the process. Configuration is read once at start (secret
        # files and the web config are re-read by themselves): keep running on the old one.
        log.warning(
            "SIGHUP received: the configuration is not reloaded; restart the exporter to apply "
            "changes (check them first with check-config)"
        )

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
        signal.signal(signal.SIGHUP, hangup)


# The simulator enforces Rocket.Chat's default rate limit, 10 calls per 60 s per route. The
# first poll fetches 8 days of history (the 7d window plus today) at once; polling every 30 s
# adds one call per poll, so any 60 s holds at most 8 + 1 + 1 history calls and no poll has to
# wait (at 15 s the fourth poll waited for the next window, and the exporter rightly warned
# that its poll_interval was too short). tests/test_cli.py checks this arithmetic.
DEMO_AGENTS = 50
DEMO_POLL_SECONDS = 30
DEMO_CONFIG = """\
poll_interval: {poll}s
windows: [1h, 8h, 24h, 7d, today, yesterday]
staffing:
  default: 1
  rules:
    - days: [mon, tue, wed, thu, fri]
      from: "08:00"
      to: "18:00"
      agents: 5
servers:
  - name: demo
    url: {url}
    user_id: {user_id}
    auth_token: {token}
    timezone: UTC
"""


def browser_url(web: WebServer, listen: str | Sequence[str]) -> str:
    """The URL to open for the (first) listener: loopback for an any-address listener."""
    host = parse_listen_address(listen if isinstance(listen, str) else listen[0])[0]
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"{web.scheme}://{host}:{web.port}/"


def demo(args: argparse.Namespace, guard: WebGuard | None = None) -> int:
    """Run the simulator in-process and the exporter against it over real HTTP."""
    from exporter.simulator import Simulator, SimulatorConfig
    from exporter.simulator import serve as serve_simulator

    listen = args.listen or [DEMO_LISTEN]
    sim_config = SimulatorConfig(agents=DEMO_AGENTS, seed=1, timezone="UTC")
    sim_server = serve_simulator(Simulator(sim_config), host="127.0.0.1", port=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "config.yaml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(
                DEMO_CONFIG.format(
                    poll=DEMO_POLL_SECONDS,
                    url=sim_server.url,
                    user_id=sim_config.user_id,
                    token=sim_config.auth_token,
                )
            )
        config = load_config(path)
        log.info(
            f"demo: simulated Rocket.Chat with {DEMO_AGENTS} agents", extra={"url": sim_server.url}
        )

        def announce(web: WebServer) -> None:
            print(f"open {browser_url(web, listen)}", flush=True)

        try:
            return serve(config, listen, guard=guard, on_listening=announce, **web_options(args))
        finally:
            sim_server.stop()
