"""Where hypervisors connect: the manager's listening socket for ptcp:PORT[:IP] or punix:PATH.

Bound here rather than by ovs.stream.PassiveStream.open: python-ovs parses ptcp as HOST:PORT
(OVS spells it PORT:IP), leaves the socket blocking, and for punix installs fatal-signal
handlers that would take SIGINT/SIGTERM away from the controller. A punix socket file is ours
to create and to remove, but never one another live manager is listening on.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import stat
import struct
from collections.abc import Callable
from typing import Any

import ovs.stream

from ovsdb_agent import sockets

ACCEPTS_PER_ROUND = 64  # bounds one loop round when many hypervisors reconnect at once


class OvsdbListenError(RuntimeError):
    """The manager could not listen where it was told to."""


class Listener:
    """A bound, non-blocking listening socket as a python-ovs PassiveStream."""

    def __init__(self, listen: str) -> None:
        """Raises OvsdbListenError when it cannot listen there."""
        sock, self._unix_path = _listen(listen)  # path and inode of our socket file
        self._pstream = ovs.stream.PassiveStream(sock, listen, None)

    def fileno(self) -> int:
        return int(self._pstream.socket.fileno())

    def accept(self, adopt: Callable[[Any], object]) -> int:
        """Hand up to ACCEPTS_PER_ROUND waiting connections' streams to adopt. Returns the
        error that stopped accepting, or 0 when none did."""
        for _ in range(ACCEPTS_PER_ROUND):
            error, stream = self._pstream.accept()
            if error == errno.EAGAIN:
                break
            if error in (errno.ECONNABORTED, errno.EPROTO, errno.EINTR):
                continue  # that peer gave up; others may be waiting
            if error:
                return int(error)
            adopt(stream)
        return 0

    def close(self) -> None:
        """Stop listening and remove our unix socket file (not one that replaced it)."""
        self._pstream.close()
        if self._unix_path is not None:
            _remove_stale_socket(*self._unix_path)
            self._unix_path = None


def peer_name(sock: socket.socket, seq: int, kind: str = "tcp") -> str:
    """The connection's name in reports and logs: tcp:IP:PORT (ssl:IP:PORT over TLS), or the
    peer's pid for unix."""
    if sock.family == socket.AF_UNIX:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return f"unix:pid={struct.unpack('3i', creds)[0]}#{seq}"
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    host, port = sock.getpeername()[:2]
    return f"{kind}:{sockets.host_port(host, port)}"


def _listen(listen: str) -> tuple[socket.socket, tuple[str, int] | None]:
    """A non-blocking listening socket for ptcp:PORT[:IP] or punix:PATH, and the unix path
    with its inode."""
    kind, _, rest = listen.partition(":")
    if kind in ("ptcp", "pssl"):  # pssl: TLS comes after accept (ovsdb_agent.tls_accept)
        host, port = _tcp_address(listen, rest)
        try:
            return sockets.tcp_listener(host, port), None
        except OSError as exc:
            raise OvsdbListenError(f"cannot listen on {listen}: {_why(exc)}") from exc
    if kind == "punix" and rest:
        if _someone_listens(rest):
            raise OvsdbListenError(f"cannot listen on {listen}: {os.strerror(errno.EADDRINUSE)}")
        _remove_stale_socket(rest)
        sock = _bind(listen, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM), rest)
        os.chmod(rest, 0o700)  # like OVS's punix: only the owner (root) may connect
        return sock, (rest, os.stat(rest).st_ino)
    raise OvsdbListenError(f"cannot listen on {listen}: expected ptcp:PORT[:IP], "
                           "pssl:PORT[:IP] or punix:PATH")


def _tcp_address(listen: str, rest: str) -> tuple[str, int]:
    port, _, host = rest.partition(":")
    host = host.strip("[]") or "0.0.0.0"
    try:
        ip = ipaddress.ip_address(host)
        number = int(port)
        if not 0 <= number <= 65535:
            raise ValueError(port)
    except ValueError:
        raise OvsdbListenError(
            f"cannot listen on {listen}: expected ptcp:PORT[:IP] with an IP address") from None
    return str(ip), number


def _bind(listen: str, sock: socket.socket, address: Any) -> socket.socket:
    try:
        return sockets.listening(sock, address)
    except OSError as exc:
        raise OvsdbListenError(f"cannot listen on {listen}: {_why(exc)}") from exc


def _why(exc: OSError) -> str:
    return os.strerror(exc.errno) if exc.errno else str(exc)


def _someone_listens(path: str) -> bool:
    """A live socket at path belongs to another manager; replacing it would steal its peers."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def _remove_stale_socket(path: str, inode: int | None = None) -> None:
    """A socket file left by a previous run would make bind fail; anything else stays, and so
    does a socket that replaced ours (inode given)."""
    try:
        st = os.lstat(path)
        if stat.S_ISSOCK(st.st_mode) and inode in (None, st.st_ino):
            os.unlink(path)
    except FileNotFoundError:
        pass
