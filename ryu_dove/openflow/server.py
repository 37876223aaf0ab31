"""The OpenFlow listener and every switch connection in one epoll, run by the engine's thread.

The engine calls `poll(timeout)` where it used to wait on its queue: the wait returns when a
switch sends something, a socket can take more bytes, or another thread posts an event
(`wake()`). What the switches said comes back as engine events (SwitchUp, SwitchDown,
SwitchMessage), so the engine handles them in its batch exactly as it did when os-ken's
threads posted them. Writes happen inside the reconcilers' calls to `send`
(ryu_dove/openflow/connection.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

from ovsdb_agent import sockets
from ovsdb_agent.peerlog import RateLimit
from ryu_dove.events import MessageKind, SwitchDown, SwitchMessage, SwitchUp
from ryu_dove.openflow.connection import ECHO_INTERVAL_S, Events, State, SwitchConnection

LOG = logging.getLogger(__name__)

ACCEPT_BURST = 256  # connections accepted per wake-up: a thousand switches reconnect at once
TICK_S = 1.0  # how often connections check their liveness (at most; a third of the echo
# interval when that is shorter)
MAX_CONNECTIONS = 4096  # in all; more are accepted and closed at once (the kernel queue stays
MAX_HANDSHAKING = 2048  # short), as are more than this many that have not said who they are:
# above the fleet, since after a controller restart every switch is in its handshake at once
MAX_TOTAL_BACKLOG = 1 << 30  # bytes owed to all switches together; above it, the switches
# owed the most are dropped (each reconnects and is read again, never cleared)
ACCEPT_BACKOFF_S = 1.0  # after accept() fails (out of descriptors): stop accepting this long


class OpenFlowServer(Events):
    def __init__(self, host: str, port: int,
                 clock: Callable[[], float] = time.monotonic,
                 tls: ssl.SSLContext | None = None,
                 echo_interval_s: float = ECHO_INTERVAL_S) -> None:
        """`tls`: switches must present a certificate this context accepts (mutual TLS);
        None serves plain TCP, which lets anyone who reaches the port be any switch.
        `echo_interval_s`: a switch silent this long is probed, three times this long is
        unreachable (ryu_dove.openflow.connection)."""
        if not echo_interval_s > 0:
            raise ValueError("the echo interval is a positive number of seconds")
        self._clock = clock
        self._tls = tls
        self.echo_interval_s = echo_interval_s
        self._tick_s = min(TICK_S, echo_interval_s / 3)
        self._listener = sockets.tcp_listener(host, port)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._selector.register(self._wake_fd, selectors.EVENT_READ, self._wake_fd)
        self.connections: set[SwitchConnection] = set()
        self._handshaking: set[SwitchConnection] = set()
        self._events: list[Any] = []
        self._next_tick = clock() + self._tick_s
        self._returned = clock()  # when poll() last returned: from then on the engine is busy
        self._accept_paused_until: float | None = None
        self._log = RateLimit(LOG, clock=clock)
        self.refused_connections = 0

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._listener.getsockname()[:2]
        return host, port

    def wake(self) -> None:
        """Make a poll() in progress return (any thread may call this)."""
        with contextlib.suppress(OSError):  # closed: the engine is stopping
            os.eventfd_write(self._wake_fd, 1)

    def poll(self, timeout: float) -> list[Any]:
        """Wait up to `timeout` s for anything to do, do it; the engine events it produced."""
        if self._events:
            timeout = 0
        self._excuse_busy_engine()
        for key, mask in self._selector.select(timeout):
            party = key.data
            if isinstance(party, SwitchConnection):
                try:
                    self._serve(party, mask)
                except Exception:  # a bug with one switch must not take the others down
                    LOG.exception("%r: unexpected error; closing the connection", party)
                    party.close("internal error (see the log)")
            elif party is None:
                self._accept()
            else:
                _drain(self._wake_fd)
        now = self._clock()
        if self._accept_paused_until is not None and now >= self._accept_paused_until:
            self._accept_paused_until = None
            self._selector.register(self._listener, selectors.EVENT_READ, None)
        if now >= self._next_tick:
            self._next_tick = now + self._tick_s
            for conn in list(self.connections):
                conn.tick(now, self.echo_interval_s)
            self._bound_backlog()
        events, self._events = self._events, []
        self._returned = self._clock()
        return events

    def _excuse_busy_engine(self) -> None:
        """A switch is judged by how long we listened to it: after a long batch (a cold
        start at a thousand switches, a GC pause) the silence is ours, not theirs."""
        busy = self._clock() - self._returned
        if busy > self._tick_s:
            for conn in self.connections:
                conn.excuse(busy)

    def close(self) -> None:
        for conn in list(self.connections):
            conn.close("controller stopping")
        self._selector.close()
        self._listener.close()
        os.close(self._wake_fd)

    # --- connections --------------------------------------------------------------------

    def _accept(self) -> None:
        for _ in range(ACCEPT_BURST):
            try:
                sock, address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors, say: back off, switches retry
                self._pause_accepting(exc)
                return
            if (len(self.connections) >= MAX_CONNECTIONS
                    or len(self._handshaking) >= MAX_HANDSHAKING):
                self._refuse(sock, address)
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_side=True,
                                             do_handshake_on_connect=False)
            conn = SwitchConnection(sock, address, self, self._clock)
            if conn.state is not State.CLOSED:  # (closed at once if its HELLO failed)
                self.connections.add(conn)
                self._handshaking.add(conn)
                self._selector.register(sock, _interest(conn), conn)

    def _bound_backlog(self) -> None:
        """Every connection's backlog is bounded (MAX_BACKLOG); this bounds their sum."""
        total = sum(conn.backlog for conn in self.connections)
        if total <= MAX_TOTAL_BACKLOG:
            return
        for conn in sorted(self.connections, key=lambda c: c.backlog, reverse=True):
            total -= conn.backlog
            conn.close(f"{conn.backlog >> 20} MiB waiting while all switches together are "
                       f"owed more than {MAX_TOTAL_BACKLOG >> 20} MiB")
            if total <= MAX_TOTAL_BACKLOG:
                return

    def _pause_accepting(self, exc: OSError) -> None:
        self._selector.unregister(self._listener)
        self._accept_paused_until = self._clock() + ACCEPT_BACKOFF_S
        self._log.log(logging.ERROR, "accept", "OpenFlow: cannot accept a connection (%s); "
                      "not accepting for %.0f s", exc.strerror or exc, ACCEPT_BACKOFF_S)

    def _refuse(self, sock: socket.socket, address: Any) -> None:
        self.refused_connections += 1
        sock.close()
        self._log.log(logging.WARNING, "refused", "OpenFlow: refused a connection from %s: "
                      "%d connections, %d of them not past the handshake (limits %d and %d)",
                      address, len(self.connections), len(self._handshaking), MAX_CONNECTIONS,
                      MAX_HANDSHAKING)

    def _serve(self, conn: SwitchConnection, mask: int) -> None:
        if mask & selectors.EVENT_WRITE:
            conn.on_writable()
            self._update_interest(conn)
        if mask & selectors.EVENT_READ and conn in self.connections and not conn.reading_paused:
            conn.on_readable()

    def _update_interest(self, conn: SwitchConnection) -> None:
        if conn in self.connections:
            want = _interest(conn)
            if self._selector.get_key(conn.sock).events != want:
                self._selector.modify(conn.sock, want, conn)

    # --- what connections say (ofconn.Events) -------------------------------------------

    def switch_up(self, conn: SwitchConnection) -> None:
        self._handshaking.discard(conn)
        self._events.append(SwitchUp(conn))

    def switch_down(self, conn: SwitchConnection) -> None:
        self._events.append(SwitchDown(conn))

    def message(self, conn: SwitchConnection, kind: MessageKind, msg: Any) -> None:
        self._events.append(SwitchMessage(conn.id or 0, kind, msg))

    def backlogged(self, conn: SwitchConnection) -> None:
        self._update_interest(conn)

    def closed(self, conn: SwitchConnection) -> None:
        self._handshaking.discard(conn)
        if conn in self.connections:
            self.connections.discard(conn)
            self._selector.unregister(conn.sock)


def _interest(conn: SwitchConnection) -> int:
    """Read unless too much waits to be written to this switch; write while anything does."""
    read = 0 if conn.reading_paused else selectors.EVENT_READ
    return read | (selectors.EVENT_WRITE if conn.writing else 0)


def _drain(fd: int) -> None:
    with contextlib.suppress(BlockingIOError):
        os.eventfd_read(fd)
