"""Listening sockets and peer names, shared by every listener of the controller.

The OpenFlow listener, the OVSDB manager and the REST API all listen the same way, so they
bind through one function; the TLS context of the control channels is made here too, and a
peer's identity read from its certificate. It lives in ovsdb_agent because ryu_dove imports
ovsdb_agent and not the other way round.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from typing import Any


def tcp_listener(host: str, port: int, *, blocking: bool = False) -> socket.socket:
    """A listening TCP socket on host:port ("" or None host: every IPv4 address), with the
    kernel's deepest backlog: when a thousand switches or hypervisors reconnect at once (a
    controller restart), a shallow one drops SYNs and OVS backs off for seconds per attempt.
    Raises OSError (OverflowError for a port out of range) with the socket closed."""
    host = host or "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return listening(socket.socket(family, socket.SOCK_STREAM), (host, port), blocking=blocking)


def listening(sock: socket.socket, address: Any, *, blocking: bool = False) -> socket.socket:
    """`sock` (TCP or unix) bound to `address` and listening with the deepest backlog; closed
    before the error is raised if that fails."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(socket.SOMAXCONN)
        sock.setblocking(blocking)
    except (OSError, OverflowError):
        sock.close()
        raise
    return sock


def host_port(host: str, port: int) -> str:
    """host:port for logs and URLs, an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class TlsFiles:
    """The controller's key and certificate, and the CA its peers' certificates must chain
    to (ovs-pki's switchca for hypervisors). Mutual: a peer without a certificate signed by
    that CA never gets past the handshake."""

    key: str
    cert: str
    ca: str


def server_tls(files: TlsFiles) -> ssl.SSLContext:
    """A server context that requires and verifies the client's certificate; TLS 1.2 or
    later. Raises OSError/ssl.SSLError naming the file that is wrong."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(files.cert, files.key)
    ctx.load_verify_locations(files.ca)
    return ctx


class TlsChoiceError(ValueError):
    """TLS asked for halfway, with unusable files, or neither TLS nor plaintext chosen."""


def tls_choice(key: str | None, cert: str | None, ca: str | None, plaintext: bool,
               prefix: str = "--") -> ssl.SSLContext | None:
    """The control channels' server context, or None for plaintext when asked for by name;
    `prefix` is how the caller's options are spelled ("--" or "--dove-"), for the message."""
    files = (key, cert, ca)
    names = f"{prefix}ssl-key, {prefix}ssl-cert and {prefix}ssl-ca"
    if not any(files):
        if plaintext:
            return None
        raise TlsChoiceError(f"give {names} (certificates from ovs-pki), or {prefix}plaintext "
                             "to run without TLS")
    if key is None or cert is None or ca is None or plaintext:
        raise TlsChoiceError(f"TLS needs all of {names}, and not {prefix}plaintext")
    try:
        return server_tls(TlsFiles(key, cert, ca))
    except (OSError, ssl.SSLError) as exc:
        raise TlsChoiceError(f"cannot use the TLS files {key}, {cert}, {ca}: {exc}") from exc


def peer_identity(sock: ssl.SSLSocket) -> str | None:
    """The name on the peer's certificate: its subject's CN up to the first space (ovs-pki
    writes "NAME id:UUID"). None before the handshake is done."""
    try:
        cert = sock.getpeercert()
    except ValueError:  # not connected, or the handshake is not done
        return None
    if not cert:
        return None
    subject: Any = cert.get("subject", ())
    for rdn in subject:  # ((("commonName", "hv1 id:..."),), ...)
        for key, value in rdn:
            if key == "commonName" and str(value).strip():
                return str(value).split()[0]
    return None
