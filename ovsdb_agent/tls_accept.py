"""Accepted OVSDB connections doing their TLS handshake, before they become sessions.

python-ovs has no passive TLS (only `ssl:` as a client), and its SSLStream takes a socket
whose handshake is done: an IDL writes its first request at once, and a write during the
handshake would fail or spin. So the manager finishes the handshake here first, in its own
epoll, with a deadline: a peer without a certificate of the trusted CA, or one that never
completes the handshake, never reaches the IDL. Then the connection is an ordinary
`ovs.stream.SSLStream`, and the peer's certificate names it (its identity).
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ovs.stream
import ovs.timeval

from ovsdb_agent import sockets
from ovsdb_agent.reactor import POLLIN, POLLOUT, Reactor, Wants

HANDSHAKE_MS = 10_000.0
LOG = logging.getLogger("ovsdb_agent.manager")


@dataclass
class _Pending:
    sock: ssl.SSLSocket
    name: str
    deadline: float


class TlsHandshakes:
    def __init__(self, context: ssl.SSLContext, reactor: Reactor,
                 new_party: Callable[[], int], on_failure: Callable[[str, str], None]) -> None:
        self._context = context
        self._reactor = reactor
        self._new_party = new_party
        self._on_failure = on_failure  # (connection name, why)
        self._pending: dict[int, _Pending] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, party: int) -> bool:
        return party in self._pending

    def start(self, stream: Any, name: str) -> tuple[Any, str] | None:
        """Take an accepted plain stream over; its handshake goes on in later rounds, or is
        done already: a client on the same host can answer within one call, and a result
        dropped here would be a connection closed without a word."""
        raw, stream.socket = stream.socket, None  # the stream must not close it when collected
        sock = self._context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
        party = self._new_party()
        self._pending[party] = _Pending(sock, name, ovs.timeval.msec() + HANDSHAKE_MS)
        LOG.debug("OVSDB connection %s: TLS handshake started (party %d)", name, party)
        return self.step(party)

    def step(self, party: int) -> tuple[Any, str] | None:
        """Go on with one handshake; (SSLStream, identity) once it is done."""
        p = self._pending[party]
        wants = Wants()
        wants.timer_wait_until(p.deadline)
        try:
            p.sock.do_handshake()
        except ssl.SSLWantReadError:
            wants.fd_wait(p.sock, POLLIN)
        except ssl.SSLWantWriteError:
            wants.fd_wait(p.sock, POLLOUT)
        except (ssl.SSLError, OSError) as exc:
            self._fail(party, f"TLS handshake failed: {getattr(exc, 'reason', None) or exc}")
            return None
        else:
            return self._done(party)
        if ovs.timeval.msec() >= p.deadline:
            self._fail(party, f"no TLS handshake within {HANDSHAKE_MS / 1000:.0f} s")
            return None
        self._reactor.arm(party, wants)
        return None

    def close(self) -> None:
        for party in list(self._pending):
            self._forget(party).sock.close()

    def _done(self, party: int) -> tuple[Any, str] | None:
        p = self._pending[party]
        identity = sockets.peer_identity(p.sock)
        if identity is None:
            self._fail(party, "TLS: the certificate names no one (no commonName)")
            return None
        self._forget(party)
        return ovs.stream.SSLStream(p.sock, p.name, 0), identity

    def _fail(self, party: int, why: str) -> None:
        p = self._forget(party)
        with contextlib.suppress(OSError):
            p.sock.close()
        self._on_failure(p.name, why)

    def _forget(self, party: int) -> _Pending:
        self._reactor.forget(party)
        return self._pending.pop(party)
