"""Command line: serve (default), check-config, once, demo, simulate."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Sequence

from exporter import __version__, daystore, logs
from exporter.config import Config, ConfigError, load_config
from exporter.poller import ServerPoller, start_pollers
from exporter.process_metrics import SelfMetrics
from exporter.publisher import Publisher
from exporter.web import WebServer, parse_listen_address
from exporter.webconfig import WebConfigError, WebGuard
from exporter.weblisten import DEFAULT_MAX_CONNECTIONS, FD_RESERVE, fd_reserve

log = logging.getLogger("exporter")

COMMANDS = ("serve", "check-config", "once", "demo", "simulate")
EXIT_CONFIG = 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rocketchat-omnichannel-exporter",
        description="Prometheus exporter for Rocket.Chat Omnichannel agent availability.",
        epilog="Commands: serve (default), check-config, once (one poll, exposition to stdout), "
        "demo (built-in simulator, no Rocket.Chat needed), simulate (run the simulator alone; "
        "see 'simulate --help').",
    )
    p.add_argument("command", nargs="?", default="serve", choices=COMMANDS[:-1])
    p.add_argument(
        "--config.file",
        dest="config_file",
        default="config.yaml",
        help="path to the YAML configuration (default: config.yaml)",
    )
    p.add_argument(
        "--web.listen-address",
        dest="listen",
        metavar="ADDRESS",
        action="append",
        default=None,
        help="address to listen on, repeatable: one listener each (default: :9875, all "
        "interfaces, IPv6 and IPv4; e.g. 127.0.0.1:9875, [::1]:9875)",
    )
    p.add_argument(
        "--web.telemetry-path",
        dest="telemetry_path",
        metavar="PATH",
        default="/metrics",
        help="path under which to expose metrics (default: /metrics)",
    )
    p.add_argument(
        "--web.max-connections",
        dest="max_connections",
        metavar="N",
        type=int,
        default=DEFAULT_MAX_CONNECTIONS,
        help=f"most HTTP connections open at once (default: {DEFAULT_MAX_CONNECTIONS}; lowered "
        f"to keep {FD_RESERVE} fds + 2 per server free under the fd limit); at the cap the "
        "longest-idle one is closed",
    )
    p.add_argument(
        "--web.config.file",
        dest="web_config",
        default=None,
        help="optional TLS / basic auth configuration for the exporter's endpoint",
    )
    p.add_argument("--log.level", dest="log_level", default="info", choices=list(logs.LEVELS))
    p.add_argument("--log.format", dest="log_format", default="logfmt", choices=["logfmt", "json"])
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "simulate":
        from exporter.simulator.cli import main as simulate  # the simulator is demo/test only

        return simulate(argv[1:])
    if argv and argv[0] == "backfill":  # its own options: exporter/backfill.py, docs/backfill.md
        from exporter.backfill import main as backfill

        return backfill(argv[1:])
    args = build_parser().parse_args(argv)
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
    try:
        config = load_config(args.config_file)
        if args.command != "check-config":  # it may run elsewhere than the exporter
            daystore.check_cache_dir(config)
    except ConfigError as exc:
        print(f"error: {args.config_file}: invalid configuration:\n{exc}", file=sys.stderr)
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


DEMO_CONFIG = """\
poll_interval: 15s
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


def demo(args: argparse.Namespace, guard: WebGuard | None = None) -> int:
    """Run the simulator in-process and the exporter against it over real HTTP."""
    from exporter.simulator import Simulator, SimulatorConfig
    from exporter.simulator import serve as serve_simulator

    sim_config = SimulatorConfig(agents=50, seed=1, timezone="UTC")
    sim_server = serve_simulator(Simulator(sim_config), host="127.0.0.1", port=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "config.yaml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(
                DEMO_CONFIG.format(
                    url=sim_server.url, user_id=sim_config.user_id, token=sim_config.auth_token
                )
            )
        config = load_config(path)
        log.info("demo: simulated Rocket.Chat with 50 agents", extra={"url": sim_server.url})
        try:
            return serve(config, args.listen, guard=guard, **web_options(args))
        finally:
            sim_server.stop()
