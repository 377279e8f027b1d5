"""`rocketchat-omnichannel-exporter simulate`: serve a simulated Rocket.Chat until stopped."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .core import Simulator, SimulatorConfig
from .server import serve


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(
            f"--listen {value!r}: use HOST:PORT, e.g. 127.0.0.1:3000 (port 0 picks a free one)"
        )
    return (host.strip("[]") or "127.0.0.1"), int(port)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rocketchat-omnichannel-exporter simulate",
        description="Serve a simulated Rocket.Chat (omnichannel availability routes) for demos "
        "and tests. Data is synthetic and seeded.",
    )
    p.add_argument("--listen", type=_listen, default=("127.0.0.1", 3000), metavar="HOST:PORT")
    p.add_argument("--agents", type=int, default=50, help="generated agents (default 50)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timezone", default="UTC", help="the simulated server's time zone")
    p.add_argument(
        "--pagination",
        choices=("accepted", "rejected"),
        default="accepted",
        help="history route: accept offset/count (7.9+) or reject them (6.x-7.0)",
    )
    p.add_argument("--rate-limit", type=int, default=10, help="calls per window, 0 disables")
    p.add_argument("--rate-window", type=float, default=60.0, help="seconds")
    p.add_argument("--days", type=int, default=7, help="days of generated history")
    p.add_argument("--no-licence", action="store_true", help="no enterprise licence")
    p.add_argument(
        "--departments",
        type=int,
        default=0,
        help="generated departments, with memberships, a queue and open chats (default 0)",
    )
    p.add_argument(
        "--rooms-every",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="generated livechat rooms, one per SECONDS on average from an hour before the "
        "start to a day after, closing as time passes (service level; default 0: none)",
    )
    p.add_argument("--user-id", default="sim-user")
    p.add_argument("--auth-token", default="sim-token")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = SimulatorConfig(
            agents=args.agents,
            seed=args.seed,
            timezone=args.timezone,
            pagination=args.pagination,
            rate_limit=args.rate_limit,
            rate_window=args.rate_window,
            days=args.days,
            licence=not args.no_licence,
            user_id=args.user_id,
            auth_token=args.auth_token,
        )
    except ValueError as e:
        print(f"simulate: {e}", file=sys.stderr)
        return 2
    sim = Simulator(config)
    if args.departments > 0:
        sim.omni.generate(args.departments, [a.username for a in sim.agents])
        # One agent per department stays available whatever the generated shifts say, so a
        # demo (and the end-to-end test) always has chat slots to show.
        for dep_id in sorted(sim.omni.departments):
            first = next((u for u, ids in sorted(sim.omni.members.items()) if dep_id in ids), None)
            if first is not None:
                sim.set_live(first, status="online", status_livechat="available")
    if args.rooms_every > 0:
        now = sim.clock.now()
        deps: list[str | None] = [*sorted(sim.omni.departments), None]
        sim.rooms.generate(now - 3600, now + 86400, deps, args.seed, args.rooms_every)
    host, port = args.listen
    try:
        server = serve(sim, host, port)
    except OSError as e:
        print(f"simulate: cannot listen on {host}:{port}: {e.strerror or e}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    # The credentials are the simulator's own fake ones, printed so a demo can be wired up.
    print(f"Simulated Rocket.Chat {config.effective_version} listening on {server.url}")
    print(f"  agents={config.agents} timezone={config.timezone} pagination={config.pagination}")
    print(f"  X-User-Id: {config.user_id}")
    print(f"  X-Auth-Token: {config.auth_token}")
    print("Press Ctrl+C to stop.", flush=True)
    try:
        stop.wait()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
