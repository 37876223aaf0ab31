"""What switches send is parsed totally (ryu_dove.openflow.replies): real message layouts
built by os-ken, then mutated lengths, counts and bytes. A parse either gives a reply or
raises MalformedMessage, never anything else, never a loop; and a connection fed any bytes
at all closes or goes on, never raises."""

from __future__ import annotations

import contextlib
import socket
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from os_ken.ofproto import ofproto_protocol
from os_ken.ofproto import ofproto_v1_3 as ofp

from ryu_dove.events import MessageKind
from ryu_dove.openflow import connection as ofconn
from ryu_dove.openflow import messages, replies
from ryu_dove.openflow.replies import MalformedMessage
from tests.fakes import switch_messages

DP = ofproto_protocol.ProtocolDesc(version=ofp.OFP_VERSION)
PARSER = DP.ofproto_parser
HEADER = struct.Struct("!BBHI")
BUDGET = settings(max_examples=300, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow])


def wire(msg, xid: int = 7) -> bytes:
    msg.set_xid(xid)
    msg.serialize()
    return bytes(msg.buf)


def flow_stats_reply(cookies: list[int], more: bool = False) -> bytes:
    return switch_messages.flow_stats_reply(7, cookies, more)


def samples() -> list[bytes]:
    """One of each message the controller acts on, as os-ken (and OVS) lay them out."""
    match = PARSER.OFPMatch(in_port=3, eth_dst="02:00:00:00:00:01")
    return [
        switch_messages.flow_stats_reply(7, [1, 0xD0 << 56, 2**64 - 1], True,
                                         packets=[5, 0, 2**64 - 1]),
        wire(PARSER.ONFBundleCtrlMsg(DP, 9, ofp.ONF_BCT_COMMIT_REPLY, 0, [])),
        wire(PARSER.OFPErrorMsg(DP, type_=ofp.OFPET_BAD_MATCH, code=ofp.OFPBMC_BAD_FIELD,
                                data=b"\x04\x0e" + bytes(30))),
        switch_messages.packet_in(7, bytes(range(14)), table_id=20, cookie=5, match=match),
        wire(PARSER.OFPBarrierReply(DP)),
        switch_messages.flow_removed(7, 0xD0 << 56 | 9, table_id=10, idle_timeout=300,
                                     match=match),
    ]


def parse(buf: bytes):
    _, msg_type, _, xid = HEADER.unpack_from(buf)
    return replies.parse(DP, msg_type, xid, buf)


def test_what_os_ken_lays_out_is_read_back() -> None:
    stats, bundle, error, packet_in, barrier, removed = (parse(b) for b in samples())
    assert stats == (MessageKind.FLOW_STATS,
                     replies.FlowStatsReply(DP, 7, True, (1, 0xD0 << 56, 2**64 - 1),
                                            (5, 0, 2**64 - 1)))
    assert bundle == (MessageKind.BUNDLE,
                      replies.BundleReply(DP, 7, 9, ofp.ONF_BCT_COMMIT_REPLY))
    assert error[1].type == ofp.OFPET_BAD_MATCH and error[1].code == ofp.OFPBMC_BAD_FIELD
    assert packet_in[1].table_id == 20 and packet_in[1].data == bytes(range(14))
    assert packet_in[1].in_port == 3  # read from the match: where a punt came from
    assert barrier == (MessageKind.BARRIER, replies.BarrierReply(DP, 7))
    assert removed == (MessageKind.FLOW_REMOVED, replies.FlowRemoved(
        DP, 7, 0xD0 << 56 | 9, ofp.OFPRR_IDLE_TIMEOUT, 10))


def test_the_hand_built_layouts_are_what_os_ken_parses() -> None:
    from os_ken.ofproto import ofproto_parser
    stats, _, _, packet_in, _, _ = samples()
    msg = ofproto_parser.msg(DP, *ofproto_parser.header(stats), stats)
    assert [s.cookie for s in msg.body] == [1, 0xD0 << 56, 2**64 - 1]
    assert [s.packet_count for s in msg.body] == [5, 0, 2**64 - 1]
    assert msg.flags == ofp.OFPMPF_REPLY_MORE
    msg = ofproto_parser.msg(DP, *ofproto_parser.header(packet_in), packet_in)
    assert (msg.table_id, msg.cookie, msg.data) == (20, 5, bytes(range(14)))
    assert msg.match["in_port"] == 3
    removed = samples()[5]
    msg = ofproto_parser.msg(DP, *ofproto_parser.header(removed), removed)
    assert (msg.cookie, msg.reason, msg.table_id, msg.idle_timeout) == (
        0xD0 << 56 | 9, ofp.OFPRR_IDLE_TIMEOUT, 10, 300)
    assert msg.match["in_port"] == 3


def test_a_flow_stats_entry_of_length_zero_is_malformed_not_a_loop() -> None:
    buf = bytearray(flow_stats_reply([1]))
    struct.pack_into("!H", buf, 16, 0)  # the first entry's length
    with pytest.raises(MalformedMessage, match="flow stats entry of length 0"):
        parse(bytes(buf))


def test_other_multipart_and_experimenter_messages_are_ignored() -> None:
    ports = HEADER.pack(4, ofp.OFPT_MULTIPART_REPLY, 16, 7) + struct.pack(
        "!HH4x", ofp.OFPMP_PORT_DESC, 0)
    other = wire(PARSER.OFPExperimenter(DP, experimenter=0x2320, exp_type=1, data=b""))
    assert parse(ports) is None and parse(other) is None


@BUDGET
@given(which=st.integers(0, 4), cut=st.integers(0, 200))
def test_a_message_cut_short_is_malformed_or_read(which: int, cut: int) -> None:
    buf = samples()[which]
    short = buf[:max(8, len(buf) - cut)]
    with contextlib.suppress(MalformedMessage):
        parse(short)


@BUDGET
@given(which=st.integers(0, 3), data=st.data())
def test_mutated_lengths_and_bytes_never_raise_anything_else(which: int, data) -> None:
    buf = bytearray(samples()[which])
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(8, len(buf) - 1))
        buf[at] = data.draw(st.integers(0, 255))
    with contextlib.suppress(MalformedMessage):
        parse(bytes(buf))


@BUDGET
@given(cookies=st.lists(st.integers(0, 2**64 - 1), max_size=50),
       lengths=st.lists(st.integers(0, 0xFFFF), max_size=5))
def test_flow_stats_with_any_entry_lengths_terminate(cookies: list[int],
                                                     lengths: list[int]) -> None:
    buf = bytearray(flow_stats_reply(cookies))
    pos = 16
    for length in lengths:  # overwrite entry lengths in place, as a liar would
        if pos + 2 > len(buf):
            break
        struct.pack_into("!H", buf, pos, length)
        pos += max(length, 56)
    try:
        kind, reply = parse(bytes(buf))
    except MalformedMessage:
        return
    assert kind is MessageKind.FLOW_STATS and len(reply.cookies) <= len(cookies)


class _Events(ofconn.Events):
    def __init__(self) -> None:
        self.messages: list[object] = []

    def message(self, conn, kind, msg) -> None:
        self.messages.append(msg)


def _up_connection() -> tuple[ofconn.SwitchConnection, socket.socket]:
    a, b = socket.socketpair()
    a.setblocking(False)
    conn = ofconn.SwitchConnection(a, "fuzz", _Events(), lambda: 0.0)
    conn.feed(messages.hello())
    conn.feed(HEADER.pack(4, ofp.OFPT_FEATURES_REPLY, 32, 1) + struct.pack("!QIBB2xII", 7, 0,
                                                                            1, 0, 0, 0))
    assert conn.state is ofconn.State.UP
    return conn, b


@BUDGET
@given(chunks=st.lists(st.binary(max_size=300), max_size=8), which=st.integers(0, 4))
def test_a_connection_fed_anything_never_raises(chunks: list[bytes], which: int) -> None:
    conn, peer = _up_connection()
    try:
        conn.feed(samples()[which])
        for chunk in chunks:
            conn.feed(chunk)
    finally:
        conn.close("test over")
        peer.close()


def test_the_88_byte_flow_stats_before_the_handshake_is_never_parsed() -> None:
    a, b = socket.socketpair()
    a.setblocking(False)
    events = _Events()
    conn = ofconn.SwitchConnection(a, "attacker", events, lambda: 0.0)
    bad = bytearray(flow_stats_reply([1]))
    struct.pack_into("!H", bad, 16, 0)
    conn.feed(messages.hello() + bytes(bad))
    assert events.messages == [] and conn.state is ofconn.State.FEATURES
    conn.close("test over")
    b.close()


def test_a_malformed_message_closes_only_that_connection_and_says_why() -> None:
    conn, peer = _up_connection()
    bad = bytearray(flow_stats_reply([1]))
    struct.pack_into("!H", bad, 16, 8)
    conn.feed(bytes(bad))
    assert conn.state is ofconn.State.CLOSED
    assert "malformed message (type 19, xid 7): flow stats entry of length 8" in \
        conn.close_reason
    peer.close()
