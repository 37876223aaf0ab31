"""OpenFlow over mutual TLS: a switch must present a certificate of the trusted CA, and its
name (the certificate's commonName) becomes the connection's identity. Real TLS on loopback
with ovs-pki certificates."""

from __future__ import annotations

import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator

import pytest
from os_ken.ofproto import ofproto_v1_3 as ofp

from ovsdb_agent import sockets
from ryu_dove.events import SwitchUp
from ryu_dove.openflow import connection as ofconn
from ryu_dove.openflow.server import OpenFlowServer
from tests.unit.openflow.peers import HEADER, Clock, events_until


@pytest.fixture
def tls_server(pki) -> Iterator[OpenFlowServer]:
    trusted, _ = pki
    ctl = trusted.issue("ctl", "controller")
    ctx = sockets.server_tls(sockets.TlsFiles(str(ctl.key), str(ctl.cert),
                                              str(trusted.switch_ca)))
    srv = OpenFlowServer("127.0.0.1", 0, clock=Clock(), tls=ctx)
    yield srv
    srv.close()


def client_context(pki_, name: str | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(str(pki_.controller_ca))
    if name is not None:
        pair = pki_.issue(name, "switch")
        ctx.load_cert_chain(str(pair.cert), str(pair.key))
    return ctx


def connect(server: OpenFlowServer, ctx: ssl.SSLContext, result: list[object]) -> threading.Thread:
    """A switch that does TLS, then HELLO and FEATURES_REPLY, in a thread (the server runs in
    this one); `result` gets the socket, or the exception that ended it."""
    def run() -> None:
        try:
            raw = socket.create_connection(server.address, timeout=5)
            sock = ctx.wrap_socket(raw)
            sock.sendall(HEADER.pack(4, ofp.OFPT_HELLO, 16, 1)
                         + struct.pack("!HHI", ofp.OFPHET_VERSIONBITMAP, 8, 1 << 4))
            sock.sendall(HEADER.pack(4, ofp.OFPT_FEATURES_REPLY, 32, ofconn.FEATURES_XID)
                         + struct.pack("!QIBB2xII", 0x11, 256, 254, 0, 0, 0))
            result.append(sock)
        except (OSError, ssl.SSLError) as exc:
            result.append(exc)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_switch_with_a_trusted_certificate_is_up_under_its_name(tls_server, pki) -> None:
    result: list[object] = []
    connect(tls_server, client_context(pki[0], "hv1"), result)
    seen = events_until(tls_server, lambda s: any(isinstance(e, SwitchUp) for e in s))
    conn = next(e.dp for e in seen if isinstance(e, SwitchUp))
    assert conn.identity == "hv1" and conn.id == 0x11
    assert "(hv1)" in repr(conn)


@pytest.mark.parametrize("who", ["no certificate", "another CA's certificate"])
def test_a_switch_without_a_trusted_certificate_never_gets_past_tls(tls_server, pki,
                                                                    who: str) -> None:
    trusted, other = pki
    ctx = client_context(trusted, None)
    if who != "no certificate":  # a well-formed "hv1" certificate, from a CA nobody trusts
        pair = other.issue("hv1", "switch")
        ctx.load_cert_chain(str(pair.cert), str(pair.key))
    result: list[object] = []
    thread = connect(tls_server, ctx, result)
    deadline = time.monotonic() + 5
    while thread.is_alive() or tls_server.connections:
        assert time.monotonic() < deadline, "the connection was not refused"
        assert not any(isinstance(e, SwitchUp) for e in tls_server.poll(0.02))
    assert not tls_server.connections
