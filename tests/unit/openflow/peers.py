"""The switch's side of the OpenFlow transport tests: a blocking socket speaking just enough
OpenFlow, a settable clock, and polling the server as the engine does, with deadlines."""

from __future__ import annotations

import select
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp

from ryu_dove.events import SwitchUp
from ryu_dove.openflow import connection as ofconn
from ryu_dove.openflow.server import OpenFlowServer

HEADER = struct.Struct("!BBHI")
DPID = 0x00000A0B0C0D0E0F


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Switch:
    """The switch's side: a blocking socket speaking just enough OpenFlow."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=5)
        self._buf = b""

    def send(self, msg_type: int, body: bytes = b"", xid: int = 0, version: int = 4) -> None:
        self.sock.sendall(HEADER.pack(version, msg_type, 8 + len(body), xid) + body)

    def recv(self) -> tuple[int, int, bytes]:
        """The next message: (type, xid, whole message)."""
        while len(self._buf) < 8 or len(self._buf) < HEADER.unpack_from(self._buf)[2]:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("controller closed the connection")
            self._buf += data
        length = HEADER.unpack_from(self._buf)[2]
        msg, self._buf = self._buf[:length], self._buf[length:]
        _, msg_type, _, xid = HEADER.unpack_from(msg)
        return msg_type, xid, msg

    def closed_by_peer(self) -> bool:
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except (TimeoutError, ConnectionResetError):
            return False

    def handshake(self, server: OpenFlowServer, dpid: int = DPID) -> None:
        assert answer(server, self)[0] == ofp.OFPT_HELLO
        self.send(ofp.OFPT_HELLO, struct.pack("!HHI", ofp.OFPHET_VERSIONBITMAP, 8, 1 << 4))
        msg_type, xid, _ = answer(server, self)
        assert msg_type == ofp.OFPT_FEATURES_REQUEST
        self.send(ofp.OFPT_FEATURES_REPLY, struct.pack("!QIBB2xII", dpid, 256, 254, 0, 0, 0),
                  xid)


def events_until(server: OpenFlowServer, done: Callable[[list[Any]], bool],
                 timeout: float = 5.0) -> list[Any]:
    """Poll as the engine does until `done(events so far)`, with a deadline."""
    seen: list[Any] = []
    deadline = time.monotonic() + timeout
    while not done(seen):
        assert time.monotonic() < deadline, f"timed out; events so far: {seen}"
        seen += server.poll(0.05)
    return seen


def answer(server: OpenFlowServer, switch: Switch) -> tuple[int, int, bytes]:
    """Run the server until the switch has something to read; that message."""
    deadline = time.monotonic() + 5
    while not select.select([switch.sock], [], [], 0)[0] and not switch._buf:
        assert time.monotonic() < deadline, "the controller sent nothing"
        assert server.poll(0.02) == []
    return switch.recv()


def quiet(server: OpenFlowServer, seconds: float = 0.2) -> list[Any]:
    """Everything the server reports within `seconds` (to show that nothing is)."""
    seen: list[Any] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen += server.poll(0.02)
    return seen


def up(server: OpenFlowServer, switch: Switch, dpid: int = DPID) -> ofconn.SwitchConnection:
    switch.handshake(server, dpid)
    ev = events_until(server, lambda seen: any(isinstance(e, SwitchUp) for e in seen))
    conn: ofconn.SwitchConnection = ev[-1].dp
    return conn


