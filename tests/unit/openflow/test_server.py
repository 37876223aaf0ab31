"""The OpenFlow transport the engine's thread runs (ryu_dove/openflow/server.py,
ryu_dove/openflow/connection.py), over real TCP sockets on loopback,
with a scripted switch on the other end."""

from __future__ import annotations

import socket
import struct
import threading
import time
from typing import Any

from os_ken.ofproto import ofproto_protocol
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from ryu_dove.events import MessageKind, SwitchDown, SwitchMessage, SwitchUp
from ryu_dove.openflow import connection as ofconn
from ryu_dove.openflow import replies
from tests.unit.openflow.peers import (
    DPID,
    HEADER,
    Clock,
    answer,
    events_until,
    quiet,
    up,
)


def test_handshake_offers_only_openflow_13_and_reports_the_datapath(server, connect) -> None:
    switch = connect()
    msg_type, _, hello = answer(server, switch)
    assert msg_type == ofp.OFPT_HELLO and hello[0] == 4
    kind, _, bitmap = struct.unpack_from("!HHI", hello, 8)
    assert kind == ofp.OFPHET_VERSIONBITMAP and bitmap == 1 << 4
    switch.send(ofp.OFPT_HELLO, struct.pack("!HHI", ofp.OFPHET_VERSIONBITMAP, 8, 0b1010010))
    msg_type, xid, _ = answer(server, switch)
    assert msg_type == ofp.OFPT_FEATURES_REQUEST
    switch.send(ofp.OFPT_FEATURES_REPLY, struct.pack("!QIBB2xII", DPID, 1, 1, 0, 0, 0), xid)
    (event,) = events_until(server, bool)
    assert isinstance(event, SwitchUp) and event.dp.id == DPID
    assert event.dp.ofproto is ofp and event.dp.ofproto_parser is parser


def test_a_switch_without_13_is_told_why_and_closed(server, connect) -> None:
    switch = connect()
    answer(server, switch)
    switch.send(ofp.OFPT_HELLO, version=1)  # OpenFlow 1.0, no bitmap
    assert quiet(server) == [] and not server.connections
    msg_type, _, error = switch.recv()
    assert msg_type == ofp.OFPT_ERROR
    assert struct.unpack_from("!HH", error, 8) == (ofp.OFPET_HELLO_FAILED,
                                                    ofp.OFPHFC_INCOMPATIBLE)
    assert b"OpenFlow 1.3 only" in error[12:]
    assert switch.closed_by_peer()


def test_a_newer_switch_without_a_bitmap_agrees_on_13(server, connect) -> None:
    switch = connect()
    answer(server, switch)
    switch.send(ofp.OFPT_HELLO, version=6)  # 1.5: the lower of the two is 1.3
    assert answer(server, switch)[0] == ofp.OFPT_FEATURES_REQUEST


def test_echo_is_answered_without_the_engine(server, connect) -> None:
    switch = connect()
    up(server, switch)
    switch.send(ofp.OFPT_ECHO_REQUEST, b"ping", xid=77)
    assert answer(server, switch)[1:] == (77, HEADER.pack(4, ofp.OFPT_ECHO_REPLY, 12, 77) + b"ping")


def test_replies_reach_the_engine_as_switch_messages(server, connect) -> None:
    switch = connect()
    conn = up(server, switch)
    switch.send(ofp.OFPT_BARRIER_REPLY, xid=0x80000005)
    err = struct.pack("!HH", ofp.OFPET_BAD_MATCH, ofp.OFPBMC_BAD_FIELD) + b"\x04" * 16
    switch.send(ofp.OFPT_ERROR, err, xid=0x80000003)
    switch.send(ofp.OFPT_PORT_STATUS, b"\x00" * 72)  # not needed: ignored
    barrier, error = events_until(server, lambda seen: len(seen) >= 2)
    reply = replies.BarrierReply(conn, 0x80000005)
    assert barrier == SwitchMessage(DPID, MessageKind.BARRIER, reply)
    assert error.kind is MessageKind.ERROR and error.dpid == DPID
    assert (error.msg.type, error.msg.code, error.msg.xid) == (ofp.OFPET_BAD_MATCH,
                                                              ofp.OFPBMC_BAD_FIELD, 0x80000003)
    assert error.msg.datapath is conn


def test_a_packet_in_reaches_the_engine_to_be_counted(server, connect) -> None:
    switch = connect()
    up(server, switch)
    match = struct.pack("!HH4x", ofp.OFPMT_OXM, 4)  # an empty OXM match, padded to 8
    body = struct.pack("!IHBBQ", ofp.OFP_NO_BUFFER, 14, ofp.OFPR_NO_MATCH, 0, 0) + match
    switch.send(ofp.OFPT_PACKET_IN, body + b"\x00\x00" + b"\xff" * 14, xid=5)
    (event,) = events_until(server, bool)
    assert event.kind is MessageKind.PACKET_IN and event.dpid == DPID
    assert event.msg.reason == ofp.OFPR_NO_MATCH and len(event.msg.data) == 14


def test_messages_cut_anywhere_are_framed_whole(clock) -> None:
    conn, events = _loose_connection(clock)
    stream = (HEADER.pack(4, ofp.OFPT_HELLO, 8, 1)
              + HEADER.pack(4, ofp.OFPT_FEATURES_REPLY, 32, 1)
              + struct.pack("!QIBB2xII", DPID, 1, 1, 0, 0, 0)
              + HEADER.pack(4, ofp.OFPT_BARRIER_REPLY, 8, 9))
    for i in range(len(stream)):
        conn.feed(stream[i:i + 1])
    assert events.seen == [("up", DPID), (MessageKind.BARRIER, 9)]


def test_a_bad_length_closes_the_connection_and_says_so(clock) -> None:
    conn, events = _loose_connection(clock)
    conn.feed(HEADER.pack(4, ofp.OFPT_HELLO, 8, 1) + HEADER.pack(4, ofp.OFPT_FEATURES_REPLY, 32, 1)
              + struct.pack("!QIBB2xII", DPID, 1, 1, 0, 0, 0))
    conn.feed(HEADER.pack(4, ofp.OFPT_BARRIER_REPLY, 4, 9))
    assert events.seen == [("up", DPID), ("down", DPID)]
    assert conn.close_reason == "protocol error: message length 4"


def test_anything_before_hello_is_a_protocol_error(clock) -> None:
    conn, events = _loose_connection(clock)
    conn.feed(HEADER.pack(4, ofp.OFPT_ECHO_REQUEST, 8, 1))
    assert conn.state is ofconn.State.CLOSED and events.seen == []
    assert conn.close_reason == "protocol error: message type 2 before HELLO"


def listened(server, clock, seconds: float) -> None:
    """`seconds` pass while the server waits on its sockets (not while the engine is busy)."""
    clock.now += seconds
    server._returned = clock.now
    server._next_tick = 0


def test_a_silent_switch_is_probed_then_closed_within_five_seconds(server, connect,
                                                                    clock) -> None:
    switch = connect()
    conn = up(server, switch)
    listened(server, clock, ofconn.ECHO_INTERVAL_S)
    assert answer(server, switch)[0] == ofp.OFPT_ECHO_REQUEST
    listened(server, clock, ofconn.ECHO_INTERVAL_S)
    assert quiet(server) == []  # one unanswered echo is not yet unreachable
    listened(server, clock, ofconn.ECHO_INTERVAL_S)
    (down,) = events_until(server, bool)
    assert down == SwitchDown(conn) and "unreachable" in conn.close_reason
    assert ofconn.SILENT_LIMIT * ofconn.ECHO_INTERVAL_S <= 5.0


def test_an_answered_probe_keeps_the_switch(server, connect, clock) -> None:
    switch = connect()
    up(server, switch)
    listened(server, clock, ofconn.ECHO_INTERVAL_S)
    _, xid, _ = answer(server, switch)
    switch.send(ofp.OFPT_ECHO_REPLY, xid=xid)
    assert quiet(server) == []
    listened(server, clock, ofconn.ECHO_INTERVAL_S * 0.9)
    assert quiet(server) == [] and len(server.connections) == 1


def test_time_the_engine_was_busy_is_not_a_switch_s_silence(server, connect, clock) -> None:
    switch = connect()
    up(server, switch)
    clock.now += 10 * ofconn.ECHO_INTERVAL_S  # a long batch: nobody read the sockets
    server._next_tick = 0
    assert quiet(server) == [] and len(server.connections) == 1
    listened(server, clock, ofconn.ECHO_INTERVAL_S)
    assert answer(server, switch)[0] == ofp.OFPT_ECHO_REQUEST  # probed, not dropped


def test_a_switch_that_hangs_up_is_down(server, connect) -> None:
    switch = connect()
    conn = up(server, switch)
    switch.sock.close()
    assert events_until(server, bool) == [SwitchDown(conn)]
    assert conn.close_reason == "closed by the switch" and not server.connections


def test_what_the_socket_cannot_take_now_is_written_later_in_order(server, connect) -> None:
    switch = connect()
    conn = up(server, switch)
    switch.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    barriers = [HEADER.pack(4, ofp.OFPT_BARRIER_REQUEST, 8, xid) for xid in range(40000)]
    for i in range(0, len(barriers), 100):
        conn.send(b"".join(barriers[i:i + 100]))
    assert conn.backlog > 0  # 320 kB do not fit in the buffers at once
    got: list[int] = []
    reader = threading.Thread(target=lambda: got.extend(switch.recv()[1] for _ in barriers))
    reader.start()
    deadline = time.monotonic() + 10
    while reader.is_alive() and time.monotonic() < deadline:
        server.poll(0.01)
    reader.join(1)
    assert got == list(range(40000)) and conn.backlog == 0 and not conn.writing


def test_a_switch_that_stops_reading_is_dropped_not_buffered_forever(server, connect,
                                                                     monkeypatch) -> None:
    monkeypatch.setattr(ofconn, "MAX_BACKLOG", 1 << 20)
    switch = connect()
    conn = up(server, switch)
    chunk = HEADER.pack(4, ofp.OFPT_BARRIER_REQUEST, 8, 1) * 8192  # 64 kB
    for _ in range(200):  # 12.8 MB, more than loopback's buffers and the limit
        conn.send(chunk)
    assert "not reading" in conn.close_reason
    assert events_until(server, bool) == [SwitchDown(conn)] and not server.connections


def test_a_bug_with_one_switch_closes_only_that_one(server, connect, monkeypatch) -> None:
    bad, good = connect(), connect()
    bad_conn, good_conn = up(server, bad), up(server, good, DPID + 1)

    def broken() -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(bad_conn, "on_readable", broken)
    bad.send(ofp.OFPT_BARRIER_REPLY, xid=1)
    good.send(ofp.OFPT_BARRIER_REPLY, xid=2)
    seen = events_until(server, lambda s: len(s) >= 2)
    assert SwitchDown(bad_conn) in seen
    assert SwitchMessage(DPID + 1, MessageKind.BARRIER, replies.BarrierReply(good_conn, 2)) in seen
    assert bad_conn.close_reason == "internal error (see the log)"


def test_wake_interrupts_a_wait(server) -> None:
    threading.Timer(0.1, server.wake).start()
    started = time.monotonic()
    server.poll(5.0)
    assert time.monotonic() - started < 2.0


class _Recorder(ofconn.Events):
    def __init__(self) -> None:
        self.seen: list[tuple[Any, Any]] = []

    def switch_up(self, conn: ofconn.SwitchConnection) -> None:
        self.seen.append(("up", conn.id))

    def switch_down(self, conn: ofconn.SwitchConnection) -> None:
        self.seen.append(("down", conn.id))

    def message(self, conn: ofconn.SwitchConnection, kind: MessageKind, msg: Any) -> None:
        self.seen.append((kind, msg.xid))


def _loose_connection(clock: Clock) -> tuple[ofconn.SwitchConnection, _Recorder]:
    """A connection over a socketpair, fed by hand."""
    ours, _theirs = socket.socketpair()
    ours.setblocking(False)
    events = _Recorder()
    conn = ofconn.SwitchConnection(ours, "pair", events, clock)
    conn._theirs = _theirs  # keep the other end open for the test's length
    return conn, events


def test_connection_is_an_os_ken_protocol_desc() -> None:
    assert issubclass(ofconn.SwitchConnection, ofproto_protocol.ProtocolDesc)
