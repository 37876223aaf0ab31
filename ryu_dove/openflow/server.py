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
import time
from collections.abc import Callable
from typing import Any

from ovsdb_agent import sockets
from ryu_dove.events import MessageKind, SwitchDown, SwitchMessage, SwitchUp
from ryu_dove.openflow.connection import Events, State, SwitchConnection

LOG = logging.getLogger(__name__)

ACCEPT_BURST = 256  # connections accepted per wake-up: a thousand switches reconnect at once
TICK_S = 1.0  # how often connections check their liveness


class OpenFlowServer(Events):
    def __init__(self, host: str, port: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._listener = sockets.tcp_listener(host, port)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._selector.register(self._wake_fd, selectors.EVENT_READ, self._wake_fd)
        self.connections: set[SwitchConnection] = set()
        self._events: list[Any] = []
        self._next_tick = clock() + TICK_S

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
        if now >= self._next_tick:
            self._next_tick = now + TICK_S
            for conn in list(self.connections):
                conn.tick(now)
        events, self._events = self._events, []
        return events

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
            except OSError as exc:  # out of descriptors, say: the switch retries later
                LOG.error("OpenFlow: cannot accept a connection: %s", exc)
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = SwitchConnection(sock, address, self, self._clock)
            if conn.state is not State.CLOSED:  # (closed at once if its HELLO failed)
                self.connections.add(conn)
                self._selector.register(sock, _interest(conn), conn)

    def _serve(self, conn: SwitchConnection, mask: int) -> None:
        if mask & selectors.EVENT_WRITE and conn.on_writable() and conn in self.connections:
            self._selector.modify(conn.sock, selectors.EVENT_READ, conn)
        if mask & selectors.EVENT_READ and conn in self.connections:
            conn.on_readable()

    # --- what connections say (ofconn.Events) -------------------------------------------

    def switch_up(self, conn: SwitchConnection) -> None:
        self._events.append(SwitchUp(conn))

    def switch_down(self, conn: SwitchConnection) -> None:
        self._events.append(SwitchDown(conn))

    def message(self, conn: SwitchConnection, kind: MessageKind, msg: Any) -> None:
        self._events.append(SwitchMessage(conn.id or 0, kind, msg))

    def backlogged(self, conn: SwitchConnection) -> None:
        if conn in self.connections:
            self._selector.modify(conn.sock, _interest(conn), conn)

    def closed(self, conn: SwitchConnection) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            self._selector.unregister(conn.sock)


def _interest(conn: SwitchConnection) -> int:
    return selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.writing else 0)


def _drain(fd: int) -> None:
    with contextlib.suppress(BlockingIOError):
        os.eventfd_read(fd)
