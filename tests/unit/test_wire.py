"""The hand-packed flow-mod and bundle bytes are exactly what os-ken's own message classes
produce (tests/fakes/osken_reference.py builds those)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from os_ken.ofproto import ofproto_protocol, ofproto_v1_3

from ryu_dove.directory import Endpoint
from ryu_dove.openflow import messages as wire
from ryu_dove.pipeline.compiler import compile_switch
from ryu_dove.pipeline.flows import Flow, Move, Output, SetField, flow
from ryu_dove.pipeline.stages import Stage
from ryu_dove.policy import load_policy
from tests.fakes import osken_reference as ofencode
from tests.fakes.ovs_reference import OVS_ONLY_FIELDS, ovs_reads, ovs_text

ROOT = Path(__file__).resolve().parents[2]

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


def every_compiled_flow() -> list[Flow]:
    """Every flow the compiler produces for the unit tests' worlds (IPv4, IPv6, both)."""
    from tests.unit.pipeline.topology import POLICY, build_directory

    flows: set[Flow] = set()
    directory = build_directory()
    for hv in directory.hypervisors():
        flows |= compile_switch(POLICY, directory, hv.name)
    ipv6 = load_policy([str(ROOT / "policies" / "examples" / "ipv6.yaml")])
    fe1 = Endpoint("initech/frontend", "02:1e:00:00:00:01", ("2001:db8:7001::10",), "hv1",
                    "tap-fe1", 1, "iface-fe1")
    directory = build_directory([fe1], hvs=("hv1",))
    flows |= compile_switch(ipv6, directory, "hv1")
    return sorted(flows, key=lambda f: f.cookie)


def uses_fields_osken_lacks(f: Flow) -> bool:
    return any(isinstance(a, SetField) and a.field in OVS_ONLY_FIELDS for a in f.actions)


@pytest.mark.parametrize("f", every_compiled_flow(), ids=lambda f: f"{f.cookie:#x}")
def test_every_compiled_flow_encodes_exactly_as_osken_does(f: Flow) -> None:
    if uses_fields_osken_lacks(f):  # OVS itself is the reference for those
        assert ovs_reads(wire.flow_add(f)) == ovs_text(f)
    else:
        assert wire.flow_add(f, xid=9) == osken_bytes(ofencode.flow_add(DP, f), 9)


def test_the_neighbour_responder_uses_fields_osken_lacks() -> None:
    assert any(uses_fields_osken_lacks(f) for f in every_compiled_flow())


@given(cookie=st.integers(0, 2**64 - 1), xid=st.integers(0, 2**32 - 1))
def test_delete_by_cookie_encodes_exactly_as_osken_does(cookie: int, xid: int) -> None:
    assert wire.flow_delete(cookie, xid) == osken_bytes(ofencode.flow_delete(DP, cookie), xid)


@given(port=st.integers(1, 0xFFFFFF00), vni=st.integers(0, 2**24 - 1),
       mac=st.binary(min_size=6, max_size=6), key=st.integers(0, 2**32 - 1))
def test_random_values_encode_exactly_as_osken_does(port: int, vni: int, mac: bytes,
                                                    key: int) -> None:
    text = ":".join(f"{b:02x}" for b in mac)
    for f in (flow(Stage.IN_CLASSIFY, 100, {"in_port": port, "eth_src": text},
                   [SetField("reg0", vni)], goto=Stage.IN_PORT_SEC),
              flow(Stage.IN_L2_LOOKUP, 100, {"reg0": vni, "reg1": 0, "eth_dst": text},
                   [SetField("reg2", key), SetField("tunnel_id", vni)], goto=Stage.OUT_TUNNEL),
              flow(Stage.OUT_TUNNEL, 100, {"reg2": key}, [Output(port)])):
        assert wire.flow_add(f) == osken_bytes(ofencode.flow_add(DP, f), 0)


def test_a_field_without_an_encoding_is_refused_by_name() -> None:
    with pytest.raises(wire.EncodeError, match="vlan_vid"):
        wire.flow_add(flow(Stage.IN_CLASSIFY, 1, {"vlan_vid": 5}))


@pytest.mark.parametrize("kind", ["OPEN", "COMMIT", "DISCARD", "CLOSE"])
def test_bundle_control_matches_osken_byte_for_byte(kind: str) -> None:
    code = getattr(ofproto_v1_3, f"ONF_BCT_{kind}_REQUEST")
    assert wire.bundle_ctrl(9, code, FLAGS, 0xFFFFFFFE) == osken_bytes(
        ofencode.bundle_ctrl(DP, 9, kind), 0xFFFFFFFE)


def test_handshake_liveness_and_dump_messages_match_osken_byte_for_byte() -> None:
    text = "ryu_dove speaks OpenFlow 1.3 only"
    assert wire.hello_failed(text) == osken_bytes(ofencode.hello_failed(DP, text), 0)
    assert wire.features_request(1) == osken_bytes(ofencode.features_request(DP), 1)
    assert wire.echo_request(0) == osken_bytes(ofencode.echo_request(DP), 0)
    assert wire.barrier_request(77) == osken_bytes(ofencode.barrier_request(DP), 77)
    assert wire.flow_stats_request(0x80000001) == osken_bytes(ofencode.flow_dump(DP),
                                                              0x80000001)


def test_an_echo_reply_returns_the_request_xid_and_data() -> None:
    request = osken_bytes(ofencode.echo_request(DP, b"are you there"), 0x1234)
    assert wire.echo_reply(request) == osken_bytes(ofencode.echo_reply(DP, b"are you there"),
                                                   0x1234)


def test_hello_offers_openflow_13_only_as_osken_reads_it() -> None:
    # os-ken does not serialize a HELLO's elements, so its parser is the reference here.
    from os_ken.ofproto import ofproto_parser
    buf = wire.hello()
    msg = ofproto_parser.msg(DP, *ofproto_parser.header(buf), buf)
    (bitmap,) = msg.elements
    assert bitmap.versions == [ofproto_v1_3.OFP_VERSION]
