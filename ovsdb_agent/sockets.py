"""Listening sockets and peer names, shared by every listener of the controller.

The OpenFlow listener, the OVSDB manager and the REST API all listen the same way, so they
bind through one function (TLS, connection limits and the like will be added here once, not
three times). It lives in ovsdb_agent because ryu_dove imports ovsdb_agent and not the
other way round.
"""

from __future__ import annotations

import socket


def tcp_listener(host: str, port: int, *, blocking: bool = False) -> socket.socket:
    """A listening TCP socket on host:port ("" or None host: every IPv4 address), with the
    kernel's deepest backlog: when a thousand switches or hypervisors reconnect at once (a
    controller restart), a shallow one drops SYNs and OVS backs off for seconds per attempt.
    Raises OSError (OverflowError for a port out of range) with the socket closed."""
    host = host or "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(socket.SOMAXCONN)
        sock.setblocking(blocking)
    except (OSError, OverflowError):
        sock.close()
        raise
    return sock


def host_port(host: str, port: int) -> str:
    """host:port for logs and URLs, an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
