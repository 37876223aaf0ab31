"""The hand-packed bundle bytes are exactly what os-ken's own message classes produce."""

from __future__ import annotations

from os_ken.ofproto import ofproto_protocol, ofproto_v1_3

from ryu_dove import ofencode, wire
from ryu_dove.flows import Move, Output, SetField, flow
from ryu_dove.pipeline import Stage

DP = ofproto_protocol.ProtocolDesc(version=ofproto_v1_3.OFP_VERSION)
FLOW = flow(Stage.IN_ARP_RESPONDER, 100,
            {"reg0": 5001, "eth_type": 0x0806, "arp_op": 1, "arp_tpa": "198.51.100.10"},
            [Move("eth_src", "eth_dst", 48), SetField("eth_src", "02:00:00:00:00:01"),
             Output(0xFFFFFFF8)])
FLAGS = ofproto_v1_3.ONF_BF_ATOMIC | ofproto_v1_3.ONF_BF_ORDERED


def osken_bytes(msg, xid: int) -> bytes:
    msg.set_xid(xid)
    msg.serialize()
    return bytes(msg.buf)


def test_bundle_add_of_a_flow_matches_osken_byte_for_byte():
    ours = wire.bundle_add(7, FLAGS, wire.flow_add_bytes(FLOW), 0x80000005)
    theirs = osken_bytes(ofencode.bundle_add(DP, 7, ofencode.flow_add(DP, FLOW)), 0x80000005)
    assert ours == theirs


def test_bundle_add_of_a_delete_matches_osken_byte_for_byte():
    ours = wire.bundle_add(3, FLAGS, wire.flow_delete_bytes(FLOW.cookie), 42)
    theirs = osken_bytes(ofencode.bundle_add(DP, 3, ofencode.flow_delete(DP, FLOW.cookie)), 42)
    assert ours == theirs


def test_each_flow_is_encoded_once_and_reused_with_any_xid():
    first = wire.flow_add_bytes(FLOW)
    assert wire.flow_add_bytes(FLOW) is first  # cached by cookie
    a = wire.bundle_add(1, FLAGS, first, 1)
    b = wire.bundle_add(1, FLAGS, first, 2)
    assert a != b and len(a) == len(b)  # only the xids differ
