"""Listening sockets and bounded connections for the exporter's HTTP endpoint.

One acceptor thread serves every `--web.listen-address`. A new connection waits ("parked") in
the acceptor's selector until its first bytes arrive, then gets its own thread (the TLS
handshake runs there): a client that connects and says nothing costs an fd, never a thread.
What keeps an open port from exhausting the process:

- **A connection cap** (`--web.max-connections`), lowered at start to fit under the soft
  RLIMIT_NOFILE minus the fds already open minus a reserve (FD_RESERVE + 2 per server), which
  stays free for the connections to Rocket.Chat, the history cache and /proc reads.
- **Deadlines per state**, enforced by the acceptor (a blocking read only bounds one recv, so a
  client dripping a byte a second would never hit it): the TLS handshake plus the first request
  line and headers within HEADER_TIMEOUT_SECONDS of accepting (slowloris), an idle keep-alive
  connection gets IDLE_TIMEOUT_SECONDS for its next first byte then HEADER_TIMEOUT_SECONDS for
  the rest of the headers, an answer RESPONSE_TIMEOUT_SECONDS to be written.
- **At the cap, a connection that is not being answered is closed** to make room: the oldest
  of those that sent nothing, else the oldest with a partial request or idle keep-alive, never
  one whose first bytes were a whole request head during its first EVICT_GRACE_SECONDS (nginx
  reuses keep-alive connections the same way): idle or dripping clients cannot lock
  Prometheus out, and nothing is accepted while no connection can be closed (the backlog
  holds newcomers).
- **No busy loop on EMFILE/ENFILE**: accept() failing for lack of fds leaves the connection in
  the backlog, so the listener stays readable; the acceptor backs off (up to 1 s), closes the
  oldest idle connection, and logs once per episode.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import resource
import select
import selectors
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

log = logging.getLogger("exporter.web")

HEADER_TIMEOUT_SECONDS = 10.0
IDLE_TIMEOUT_SECONDS = 60.0
RESPONSE_TIMEOUT_SECONDS = 60.0
DEFAULT_MAX_CONNECTIONS = 64
FD_RESERVE = 32  # kept free for outbound connections to Rocket.Chat and files
EVICT_GRACE_SECONDS = 0.25
EVICTING_SLACK = 8  # closed connections whose threads have not let go of their fds yet
# As deep as Go's (net.core.somaxconn, which the kernel clamps it to): a scrape arriving during
# a connection flood waits in the queue; with a short queue its SYN is dropped and retried
# a second later, past a 1 s scrape timeout.
BACKLOG = 4096
ACCEPT_BURST = 64
PEEK_BYTES = 16384  # how much of a connection's first bytes are looked at (not consumed)
MAX_BACKOFF_SECONDS = 1.0
TICK_SECONDS = 0.2  # how often deadlines are checked (their resolution)
FD_ERRNOS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)

HEADERS, IDLE, BUSY = "headers", "idle", "busy"
STATE_TIMEOUTS = {
    HEADERS: HEADER_TIMEOUT_SECONDS,
    IDLE: IDLE_TIMEOUT_SECONDS,
    BUSY: RESPONSE_TIMEOUT_SECONDS,
}


def parse_listen_address(address: str) -> tuple[str, int]:
    """`:9875`, `0.0.0.0:9875`, `127.0.0.1:0`, `[::1]:9875` -> (host, port)."""
    host, sep, port = address.rpartition(":")
    ok = True
    if host.startswith("[") and host.endswith("]") and ":" in host:
        host = host[1:-1]  # an IPv6 literal
    elif any(c in host for c in ":[]"):
        ok = False  # an IPv6 address needs its brackets
    if not sep or not ok or not port.isdigit() or int(port) > 65535:
        raise ValueError(
            f"--web.listen-address: {address!r} is not host:port (e.g. ':9875', "
            "'127.0.0.1:9875' or '[::1]:9875')"
        )
    return host, int(port)


def bind(host: str, port: int, backlog: int = BACKLOG) -> socket.socket:
    """A listening socket. '' and '::' are dual-stack (IPv6 with IPV6_V6ONLY off), falling
    back to IPv4 when the host has no IPv6; other hosts bind the first address they resolve to.
    """
    if host in ("", "::"):
        try:
            return _listen(socket.AF_INET6, ("::", port), backlog, dual=True)
        except OSError as exc:
            if exc.errno not in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.EPROTONOSUPPORT):
                raise
            log.info("IPv6 unavailable, listening on IPv4 only", extra={"err": exc.strerror})
            return _listen(socket.AF_INET, ("0.0.0.0", port), backlog)
    family, _, _, _, sockaddr = socket.getaddrinfo(
        host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
    )[0]
    return _listen(family, sockaddr, backlog)


def _listen(family: int, sockaddr: tuple, backlog: int, dual: bool = False) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if dual:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(sockaddr)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # minus the listdir's own
    except OSError:
        return 16  # no /proc: a rough guess for an interpreter with a few libraries loaded


def fd_reserve(servers: int) -> int:
    """fds kept free: FD_RESERVE plus 2 per Rocket.Chat server (a connection and a spare)."""
    return FD_RESERVE + 2 * servers


def connection_cap(requested: int, reserve: int = FD_RESERVE) -> tuple[int, str]:
    """The cap actually used: `requested`, lowered to stay `reserve` fds below RLIMIT_NOFILE."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return requested, "no fd limit"
    used = open_fds()
    room = soft - used - reserve - EVICTING_SLACK
    if requested <= room:
        return requested, f"fd limit {soft}, {used} open, {reserve} reserved"
    return max(1, room), (
        f"lowered from {requested}: fd limit {soft}, {used} open, {reserve} reserved for "
        f"Rocket.Chat and files, {EVICTING_SLACK} for connections being closed"
    )


@dataclass(eq=False)
class Conn:
    """One accepted connection. `sock` is replaced by its TLS wrapper once that exists."""

    sock: socket.socket
    peer: tuple
    state: str = HEADERS
    deadline: float = 0.0
    since: float = 0.0
    closed: bool = False
    killed: bool = False  # shut down by the table; its thread is about to close it
    threaded: bool = False  # False while parked in the acceptor (nothing received yet)
    whole: bool = False  # its first bytes held a whole request head (or TLS ClientHello)
    served: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def kill(self) -> None:
        """Wake the connection's thread (its read or write fails); it closes the socket."""
        with self.lock:
            self.killed = True
            if not self.closed:
                # socket.socket's own shutdown, not SSLSocket's: no TLS state touched from here.
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(self.sock, socket.SHUT_RDWR)

    def close(self) -> None:
        with self.lock:
            self.closed = True
            with contextlib.suppress(OSError):
                self.sock.close()


class Connections:
    """The table of open connections: the cap, deadlines and eviction."""

    def __init__(self, cap: int, clock: Callable[[], float] = time.monotonic):
        self.cap = cap
        self.clock = clock
        self._cond = threading.Condition()
        self._conns: set[Conn] = set()
        self.evicted = 0
        self.expired = 0
        # How a killed connection without a thread yet is closed (the acceptor, which holds it
        # in its selector, sets this); called outside the lock, from the acceptor's thread.
        self.close_parked: Callable[[Conn], None] = self.remove

    def __len__(self) -> int:
        with self._cond:
            return len(self._conns)

    def add(self, sock: socket.socket, peer: tuple) -> Conn:
        now = self.clock()
        conn = Conn(sock, peer, since=now, deadline=now + STATE_TIMEOUTS[HEADERS])
        with self._cond:
            self._conns.add(conn)
        return conn

    def remove(self, conn: Conn) -> None:
        conn.close()
        with self._cond:
            self._conns.discard(conn)
            self._cond.notify_all()

    def set_state(self, conn: Conn, state: str) -> None:
        now = self.clock()
        with self._cond:
            conn.state, conn.since, conn.deadline = state, now, now + STATE_TIMEOUTS[state]

    def expire(self) -> None:
        now = self.clock()
        # Decided and done under the table's lock: a state change (new deadline) cannot slip
        # in between. kill() takes the connection's lock; nothing takes them the other way.
        with self._cond:
            late = [c for c in self._conns if c.deadline <= now and not c.killed]
            for conn in late:
                log.debug("connection deadline passed", extra={"state": conn.state})
                self.expired += 1
                conn.kill()
        for conn in late:
            if not conn.threaded:
                self.close_parked(conn)

    def evict_oldest_waiting(self) -> bool:
        """Close the connection that has waited longest for a request; False if all are busy.

        One that has sent nothing at all goes first, then one that sent part of a request. One
        whose first bytes were a whole request head (as a scrape sends it) gets
        EVICT_GRACE_SECONDS to be read and answered: a flood of newcomers cannot push it out
        before its thread has run.
        """
        now = self.clock()
        with self._cond:  # as in expire(): a connection turning busy is never the victim
            waiting = [
                c
                for c in self._conns
                if c.state != BUSY
                and not c.killed
                and not (c.whole and now - c.since < EVICT_GRACE_SECONDS)
            ]
            # A whole request head (a scrape) goes last of all, even past its grace and even
            # while still parked: on a loaded machine its thread may take longer to start.
            victim = min(waiting, key=lambda c: (c.whole, c.threaded, c.since), default=None)
            if victim is None:
                return False
            self.evicted += 1
            victim.kill()
        if not victim.threaded:
            self.close_parked(victim)
        return True

    def make_room(self, timeout: float) -> bool:
        """True when a new connection may be accepted (evicting one if needed).

        Evicted connections are not waited for (that would make accepting as slow as their
        threads are to wake), but at most EVICTING_SLACK of them may still hold their fds.
        """
        with self._cond:
            live = self._live()
        if live >= self.cap and not self.evict_oldest_waiting():
            return self._wait(lambda: self._live() < self.cap, timeout)
        return self._wait(lambda: len(self._conns) < self.cap + EVICTING_SLACK, timeout)

    def _live(self) -> int:
        return sum(1 for c in self._conns if not c.killed)

    def _wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    def kill_all(self) -> None:
        with self._cond:
            conns = list(self._conns)
        for conn in conns:
            conn.kill()
            if not conn.threaded:
                self.remove(conn)

    def start_thread(self, conn: Conn, target: Callable[[Conn], None]) -> None:
        with self._cond:
            conn.threaded = True
        threading.Thread(target=target, args=(conn,), name="http-conn", daemon=True).start()


def whole_tls_record(data: bytes) -> bool:
    """A whole TLS record (a ClientHello comes in one): type, version, 2-byte length, body."""
    return len(data) >= 5 and len(data) >= 5 + int.from_bytes(data[3:5], "big")


def _pending(listener: socket.socket) -> bool:
    return bool(select.select([listener], [], [], 0)[0])


class Acceptor:
    """Accepts on every listener, within the cap, and runs `serve(conn)` in a thread each."""

    def __init__(
        self,
        listeners: Sequence[socket.socket],
        connections: Connections,
        serve: Callable[[Conn], None],
        whole: Callable[[bytes], bool] = lambda data: b"\r\n\r\n" in data,
    ):
        self.listeners = list(listeners)
        self.connections = connections
        self.serve = serve
        self.whole = whole  # do these first bytes hold a whole request head?
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="http-accept", daemon=True)
        self._sel: selectors.BaseSelector = selectors.DefaultSelector()  # the acceptor's own
        self.fd_episodes = 0  # how often accept() ran out of fds (each logged once)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout=5)
        self.connections.close_parked = self.connections.remove
        for sock in self.listeners:
            sock.close()
        self.connections.kill_all()

    def _loop(self) -> None:
        backoff = 0.0
        with self._sel as sel:
            self.connections.close_parked = self._close_parked
            for sock in self.listeners:
                sel.register(sock, selectors.EVENT_READ)  # data None: a listener
            while not self._stop.is_set():
                try:
                    backoff = self._round(backoff)
                except Exception:  # noqa: BLE001 - a dead acceptor would leave the port deaf
                    log.exception("accepting connections failed; going on")
                    self._stop.wait(TICK_SECONDS)

    def _round(self, backoff: float) -> float:
        self.connections.expire()
        for key, _ in self._sel.select(timeout=TICK_SECONDS):
            if self._stop.is_set():
                break
            if key.data is None:
                backoff = self._accept_burst(cast(socket.socket, key.fileobj), backoff)
            else:
                self._unpark(key.data)
        return backoff

    def _accept_burst(self, listener: socket.socket, backoff: float) -> float:
        for i in range(ACCEPT_BURST):
            if i and not _pending(listener):
                break  # make room (evict) only for a connection that is waiting
            self._unpark_ready()  # those that just sent their request: not evicted first
            if not self.connections.make_room(timeout=TICK_SECONDS):
                break  # every slot busy answering: the backlog holds the newcomer
            backoff, more = self._accept(listener, backoff)
            if backoff:
                self._stop.wait(backoff)
            if not more or backoff:
                break
        return backoff

    def _unpark(self, conn: Conn) -> None:
        """The first bytes (or EOF) arrived: the connection gets its thread."""
        if conn.closed or conn.threaded:
            return  # closed or unparked earlier in this same round of events
        self._sel.unregister(conn.sock)
        if conn.killed:
            self.connections.remove(conn)
            return
        try:
            first = conn.sock.recv(PEEK_BYTES, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except OSError:
            first = b""
        conn.whole = self.whole(first)
        try:
            self.connections.start_thread(conn, self._run)
        except RuntimeError:  # can't start new thread
            self.connections.remove(conn)

    def _unpark_ready(self) -> None:
        for key, _ in self._sel.select(timeout=0):
            if key.data is not None:
                self._unpark(key.data)

    def _close_parked(self, conn: Conn) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(conn.sock)
        self.connections.remove(conn)

    def _accept(self, listener: socket.socket, backoff: float) -> tuple[float, bool]:
        """Accept one connection: (the back-off to apply, 0 when all is well; more waiting?).

        It waits in the selector until it sends something: a connection that says nothing
        costs an fd and a table entry, no thread."""
        try:
            sock, peer = listener.accept()
        except (BlockingIOError, InterruptedError):
            return backoff, False
        except OSError as exc:
            if exc.errno not in FD_ERRNOS:
                log.debug("accept failed", extra={"err": str(exc)})
                return backoff, False
            if not backoff:
                self.fd_episodes += 1
                log.warning(
                    "out of file descriptors accepting connections: backing off; lower "
                    "--web.max-connections or raise the fd limit (ulimit -n)",
                    extra={"err": exc.strerror, "connections": len(self.connections)},
                )
            self.connections.evict_oldest_waiting()
            return min(max(backoff * 2, 0.05), MAX_BACKOFF_SECONDS), False
        if backoff:
            log.info("accepting connections again", extra={"connections": len(self.connections)})
        conn = self.connections.add(sock, peer)
        self._sel.register(sock, selectors.EVENT_READ, conn)
        return 0.0, True

    def _run(self, conn: Conn) -> None:
        try:
            self.serve(conn)
        except Exception:  # noqa: BLE001 - one connection's failure must not go unnoticed
            log.exception("connection failed")
        finally:
            self.connections.remove(conn)
