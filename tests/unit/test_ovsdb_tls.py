"""The OVSDB manager over mutual TLS (pssl:): a peer must finish a TLS handshake with a
certificate of the trusted CA before any OVSDB is spoken; then the manager talks JSON-RPC to
it. Real TLS on loopback with ovs-pki certificates; the peer is scripted."""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Iterator

import pytest

from ovsdb_agent import sockets
from ovsdb_agent.manager import OvsdbManager


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def manager(pki) -> Iterator[tuple[OvsdbManager, int]]:
    trusted, _ = pki
    ctl = trusted.issue("ctl", "controller")
    ctx = sockets.server_tls(sockets.TlsFiles(str(ctl.key), str(ctl.cert),
                                              str(trusted.switch_ca)))
    port = free_port()
    mgr = OvsdbManager(f"pssl:{port}:127.0.0.1", lambda r: None, lambda c: None, tls=ctx)
    mgr.start()
    yield mgr, port
    mgr.stop()


def client(pki_, cert_pki=None, name: str | None = "hv1") -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(str(pki_.controller_ca))
    if name is not None:
        pair = (cert_pki or pki_).issue(name, "switch")
        ctx.load_cert_chain(str(pair.cert), str(pair.key))
    return ctx


def test_a_trusted_hypervisor_gets_past_tls_and_is_spoken_to_in_ovsdb(manager, pki) -> None:
    _, port = manager
    with client(pki[0]).wrap_socket(socket.create_connection(("127.0.0.1", port),
                                                             timeout=5)) as sock:
        first = json.loads(sock.recv(65536).decode())  # the manager's first request
        assert first["method"] in ("get_schema", "monitor", "monitor_cond",
                                   "monitor_cond_since", "get_server_id", "transact")


@pytest.mark.parametrize("who", ["no certificate", "another CA's certificate"])
def test_an_untrusted_peer_never_reaches_ovsdb(manager, pki, who: str) -> None:
    mgr, port = manager
    trusted, other = pki
    ctx = client(trusted, name=None) if who == "no certificate" else client(trusted, other)
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    # TLS 1.3: the server's refusal may only show at the first read.
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)), ctx.wrap_socket(raw) as sock:
        sock.recv(1)
        raise ConnectionError("closed")
    deadline = time.monotonic() + 5
    while mgr.refused_connections == 0:  # counted, and logged as a refused TLS handshake
        assert time.monotonic() < deadline, "the manager did not refuse the handshake"
        time.sleep(0.02)


def test_a_handshake_done_at_once_is_handed_over_not_dropped() -> None:
    """A client on the same host can finish within the first step; the stream must reach
    the manager (it used to be dropped, closing the connection without a word)."""
    from ovsdb_agent.reactor import Reactor
    from ovsdb_agent.tls_accept import TlsHandshakes

    class DoneAtOnce:
        def do_handshake(self) -> None:
            pass

        def getpeercert(self) -> dict:
            return {"subject": ((("commonName", "hv1 id:1234"),),)}

        def fileno(self) -> int:
            return -1

        def close(self) -> None:  # what dropping the stream would have done, silently
            pass

    class Context:
        def wrap_socket(self, raw, **kwargs):
            return DoneAtOnce()

    class PlainStream:
        socket = object()

    failures: list[tuple[str, str]] = []
    handshakes = TlsHandshakes(Context(), Reactor(), iter(range(1, 10)).__next__,
                               lambda name, why: failures.append((name, why)))
    done = handshakes.start(PlainStream(), "ssl:192.0.2.1:1")
    assert done is not None and done[1] == "hv1" and done[0].name == "ssl:192.0.2.1:1"
    assert len(handshakes) == 0 and failures == []
