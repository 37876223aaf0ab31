"""One switch's OpenFlow 1.3 connection, driven by the engine's thread
(see ryu_dove/openflow/server.py).

Why not os-ken's Datapath: it gives every switch a receive thread and a send thread. At a
thousand switches that is 2,000 threads, and every update a switch receives wakes one of
each (the flow-mods go through a queue to the send thread; the barrier reply comes back
through the receive thread, is parsed into an event and handed to the engine): about 40
GIL hand-offs per endpoint event. docs/benchmarks.md has the measurements. Here a switch is
a non-blocking socket in the engine's own epoll: an update is written straight to the
socket, and a reply is read, framed and handled in the same thread, with no hand-off.

os-ken provides the protocol's constants. What a switch sends is parsed totally by
ryu_dove.openflow.replies (os-ken's parsers trust the lengths inside a message); a message
that does not parse closes this connection and no other. Nothing but the handshake and
echoes is looked at before the switch has said who it is.

The handshake is the one os-ken's ofp_handler does, without the port-description request
ryu_dove has no use for: HELLO both ways (only OpenFlow 1.3 is offered; a switch that cannot
speak it gets a HELLO_FAILED error and is closed), FEATURES_REQUEST, FEATURES_REPLY (the
datapath id), then the switch is up. Echo requests are answered at once; a switch silent for
the echo interval (ECHO_INTERVAL_S unless configured) is sent one, and one silent for
SILENT_LIMIT intervals is unreachable and its connection closed (a partition or a crashed
host otherwise looks alive until TCP gives up, minutes later). Closing it touches none of
its flows (docs/availability.md).
"""

from __future__ import annotations

import contextlib
import enum
import logging
import socket
import ssl
import struct
from collections import deque
from collections.abc import Callable
from typing import Any

from os_ken.ofproto import ofproto_protocol, ofproto_v1_3

from ovsdb_agent import sockets
from ovsdb_agent.peerlog import RateLimit
from ryu_dove.events import MessageKind
from ryu_dove.openflow import messages, replies
from ryu_dove.openflow.replies import MalformedMessage

LOG = logging.getLogger(__name__)
_UNKNOWN_PEERS = RateLimit(LOG)

OFP = ofproto_v1_3
VERSION = OFP.OFP_VERSION
HEADER = struct.Struct("!BBHI")  # version, type, length, xid
FEATURES_XID = 1
ECHO_INTERVAL_S = 1.5  # a silent switch is sent an echo request after this long
SILENT_LIMIT = 3  # ...and after this many intervals of silence it is unreachable: ~5 s
HANDSHAKE_S = 20.0  # a connection that has not said who it is by then is closed (OVS takes
# milliseconds; a silent one only holds a handshake slot)
MAX_BACKLOG = 64 << 20  # bytes waiting for a switch that does not read; then it is dropped
READ_PAUSE = 1 << 20  # with this much unsent, stop reading: a peer that asks (echo) and never
# reads the answers only fills its own TCP window, not our memory
RECV_SIZE = 256 << 10
IOV_MAX = 1024
_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError)


class State(enum.Enum):
    TLS = "tls"  # the TLS handshake (certificates both ways) is under way
    HELLO = "hello"  # waiting for the switch's HELLO
    FEATURES = "features"  # waiting for FEATURES_REPLY
    UP = "up"
    CLOSED = "closed"


class Events:
    """What a connection tells its owner (ryu_dove.openflow.server turns it into engine events)."""

    def switch_up(self, conn: SwitchConnection) -> None: ...
    def switch_down(self, conn: SwitchConnection) -> None: ...
    def message(self, conn: SwitchConnection, kind: MessageKind, msg: Any) -> None: ...
    def backlogged(self, conn: SwitchConnection) -> None: ...
    def closed(self, conn: SwitchConnection) -> None: ...


class SwitchConnection(ofproto_protocol.ProtocolDesc):  # type: ignore[misc]
    """The engine's handle on a switch: `id` (the datapath id once up), `send(bytes)`, and
    os-ken's `ofproto`/`ofproto_parser`, which is all the reconciler uses."""

    def __init__(self, sock: socket.socket, address: Any, events: Events,
                 clock: Callable[[], float]) -> None:
        super().__init__(version=VERSION)
        self.id: int | None = None
        self.identity: str | None = None  # the name on its certificate (TLS only)
        self.sock = sock
        self.address = address
        self.state = State.TLS if isinstance(sock, ssl.SSLSocket) else State.HELLO
        self._tls_wants_write = False
        self._events = events
        self._clock = clock
        self._inbuf = bytearray()
        self._out: deque[memoryview] = deque()
        self.backlog = 0  # bytes accepted by send() and not yet written to the socket
        self.connected_at = self.last_heard = clock()
        self._probed = False
        self.close_reason = ""
        if self.state is State.TLS:
            self._handshake()
        else:
            self.send(messages.hello())

    def __repr__(self) -> str:
        who = f"dpid {self.id:016x}" if self.id is not None else "switch"
        if self.identity is not None:
            who += f" ({self.identity})"
        return f"<{who} at {_address(self.address)} {self.state.value}>"

    # --- TLS ----------------------------------------------------------------------------

    def _handshake(self) -> None:
        """Drive the TLS handshake; once done, the peer's certificate names it and the
        OpenFlow handshake starts."""
        assert isinstance(self.sock, ssl.SSLSocket)
        self._tls_wants_write = False
        try:
            self.sock.do_handshake()
        except ssl.SSLWantReadError:
            return
        except ssl.SSLWantWriteError:
            self._tls_wants_write = True
            self._events.backlogged(self)
            return
        except (ssl.SSLError, OSError) as exc:
            self.close(f"TLS handshake failed: {getattr(exc, 'reason', None) or exc}")
            return
        self.identity = sockets.peer_identity(self.sock)
        if self.identity is None:
            self.close("TLS: the certificate names no one (no commonName)")
            return
        self.state = State.HELLO
        self.send(messages.hello())
        self._events.backlogged(self)  # interest may change now

    # --- writing ----------------------------------------------------------------------

    def send(self, buf: bytes) -> None:
        """Write whole messages; what the socket does not take now is written when it can."""
        if self.state is State.CLOSED or not buf:
            return
        rest = memoryview(buf)
        if not self._out:
            try:
                n = self.sock.send(buf)
            except _WOULD_BLOCK:  # (TLS: retried later with the same bytes, as it must be)
                n = 0
            except OSError as exc:
                self.close(f"send failed: {exc.strerror or exc}")
                return
            if n == len(buf):
                return
            rest = rest[n:]
        self._out.append(rest)
        before, self.backlog = self.backlog, self.backlog + len(rest)
        if len(self._out) == 1 or before < READ_PAUSE <= self.backlog:
            self._events.backlogged(self)  # wait for the socket to take more; maybe stop reading
        if self.backlog > MAX_BACKLOG:
            self.close(f"not reading: {self.backlog >> 20} MiB waiting to be written")

    def on_writable(self) -> bool:
        """Write what waits; True once nothing does."""
        if self.state is State.TLS:
            self._handshake()
            return not self._tls_wants_write
        tls = isinstance(self.sock, ssl.SSLSocket)
        while self._out:
            batch = [self._out[i] for i in range(min(len(self._out), IOV_MAX))]
            try:  # TLS has no sendmsg: one buffer at a time, retried whole
                n = self.sock.send(batch[0]) if tls else self.sock.sendmsg(batch)
            except _WOULD_BLOCK:
                return False
            except OSError as exc:
                self.close(f"send failed: {exc.strerror or exc}")
                return True
            self.backlog -= n
            while n:
                head = self._out[0]
                if n >= len(head):
                    n -= len(head)
                    self._out.popleft()
                else:
                    self._out[0] = head[n:]
                    n = 0
        return True

    @property
    def writing(self) -> bool:
        return bool(self._out) or self._tls_wants_write

    @property
    def reading_paused(self) -> bool:
        return self.backlog >= READ_PAUSE

    # --- reading ----------------------------------------------------------------------

    def on_readable(self) -> None:
        if self.state is State.TLS:
            self._handshake()
            return
        try:
            data = self.sock.recv(RECV_SIZE)
            while isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
                data += self.sock.recv(RECV_SIZE)  # decrypted already: epoll will not say so
        except (*_WOULD_BLOCK, InterruptedError):
            return
        except OSError as exc:
            self.close(f"receive failed: {exc.strerror or exc}")
            return
        if not data:
            self.close("closed by the switch")
            return
        self.last_heard = self._clock()
        self._probed = False
        self.feed(data)

    def feed(self, data: bytes) -> None:
        """Take bytes from the switch; handle every whole message in them."""
        buf = self._inbuf
        buf += data
        pos, end = 0, len(buf)
        while end - pos >= 8 and self.state is not State.CLOSED:
            version, msg_type, length, xid = HEADER.unpack_from(buf, pos)
            if length < 8:
                self.close(f"protocol error: message length {length}")
                return
            if end - pos < length:
                break
            self._handle(version, msg_type, xid, bytes(buf[pos:pos + length]))
            pos += length
        del buf[:pos]

    def _handle(self, version: int, msg_type: int, xid: int, msg: bytes) -> None:
        if self.state is State.HELLO:
            self._on_hello(version, msg_type, msg)
            return
        if version != VERSION:
            self.close(f"protocol error: OpenFlow version {version} after agreeing on 1.3")
        elif msg_type == OFP.OFPT_ECHO_REQUEST:
            self.send(messages.echo_reply(msg))
        elif msg_type == OFP.OFPT_ECHO_REPLY:
            pass  # being heard from is all a probe asks
        elif self.state is State.FEATURES:
            self._during_handshake(msg_type, xid, msg)
        else:
            self._on_message(msg_type, xid, msg)

    def _on_message(self, msg_type: int, xid: int, msg: bytes) -> None:
        try:
            parsed = replies.parse(self, msg_type, xid, msg)
        except MalformedMessage as exc:  # a broken or hostile switch: this connection only
            self.close(f"malformed message (type {msg_type}, xid {xid}): {exc}")
            return
        if parsed is not None:  # anything else (port status, ...) ryu_dove does not need
            self._events.message(self, *parsed)

    def _during_handshake(self, msg_type: int, xid: int, msg: bytes) -> None:
        """Only the features reply, or an error, means anything before the switch is up;
        nothing else is even parsed."""
        if msg_type == OFP.OFPT_FEATURES_REPLY:
            self._on_features(msg)
        elif msg_type == OFP.OFPT_ERROR:
            try:
                err = replies.error(self, xid, msg)
            except MalformedMessage as exc:
                self.close(f"malformed error message during the handshake: {exc}")
                return
            _UNKNOWN_PEERS.log(logging.WARNING, "handshake error",
                               "%r: error during the handshake: type=%s code=%s", self,
                               err.type, err.code)

    def _on_hello(self, version: int, msg_type: int, msg: bytes) -> None:
        if msg_type != OFP.OFPT_HELLO:
            self.close(f"protocol error: message type {msg_type} before HELLO")
            return
        if not _speaks_13(version, msg):
            self._send_hello_failed(version)
            return
        self.state = State.FEATURES
        self.send(messages.features_request(FEATURES_XID))

    def _send_hello_failed(self, version: int) -> None:
        text = f"ryu_dove speaks OpenFlow 1.3 only; the switch offered version {version}"
        self.send(messages.hello_failed(text))
        self.on_writable()
        self.close("no common OpenFlow version (br-int's protocols must include OpenFlow13)")

    def _on_features(self, msg: bytes) -> None:
        if len(msg) < OFP.OFP_SWITCH_FEATURES_SIZE:
            self.close(f"malformed features reply of {len(msg)} bytes")
            return
        (self.id,) = struct.unpack_from("!Q", msg, 8)
        self.state = State.UP
        self._events.switch_up(self)

    # --- time ---------------------------------------------------------------------------

    def tick(self, now: float, echo_interval_s: float = ECHO_INTERVAL_S) -> None:
        """Probe a silent switch; close one that stays silent or never finishes the handshake."""
        if self.state is State.CLOSED:
            return
        silent = now - self.last_heard
        if self.state is not State.UP and now - self.connected_at > HANDSHAKE_S:
            self.close(f"no OpenFlow handshake within {HANDSHAKE_S:.0f} s")
        elif silent >= SILENT_LIMIT * echo_interval_s and self._probed:
            self.close(f"unreachable: silent for {silent:.1f} s, echo unanswered")
        elif silent >= echo_interval_s and not self._probed:
            self._probed = True
            self.send(messages.echo_request())

    def excuse(self, seconds: float) -> None:
        """We did not read from the switch for `seconds` (the engine was busy): that time
        is not its silence."""
        self.last_heard += seconds

    # --- the end ------------------------------------------------------------------------

    def close(self, reason: str) -> None:
        if self.state is State.CLOSED:
            return
        was_up = self.state is State.UP
        self.state = State.CLOSED
        self.close_reason = reason
        self._out.clear()
        self.backlog = 0
        self._events.closed(self)
        with contextlib.suppress(OSError):
            self.sock.close()
        if was_up:
            LOG.warning("%r: connection closed: %s", self, reason)
        else:  # anyone can open connections: at most a few lines about them
            _UNKNOWN_PEERS.log(logging.INFO, "closed", "%r: connection closed: %s", self, reason)
        if was_up:
            self._events.switch_down(self)



def _speaks_13(version: int, hello: bytes) -> bool:
    """OpenFlow 1.3.5 section 6.3.1: with version bitmaps on both sides, the highest common
    bit; without, the lower of the two versions (ours is 1.3)."""
    pos = 8
    while pos + 4 <= len(hello):
        kind, length = struct.unpack_from("!HH", hello, pos)
        if length < 4:
            break
        if kind == OFP.OFPHET_VERSIONBITMAP and length >= 8:
            (bitmap,) = struct.unpack_from("!I", hello, pos + 4)
            return bool(bitmap & (1 << VERSION))
        pos += (length + 7) // 8 * 8
    return version >= VERSION


def _address(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        return sockets.host_port(str(address[0]), address[1])
    return str(address)
