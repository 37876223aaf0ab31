"""The actions and match fields routing and stateful policy use (conntrack, TTL, meters,
packets to the controller, transport ports, neighbour discovery) encode exactly as os-ken's
classes do."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ryu_dove.openflow import messages as wire
from ryu_dove.pipeline.flows import Controller, Ct, DecTtl, Meter, Output, SetField, ct_state, flow
from ryu_dove.pipeline.stages import Stage
from tests.fakes import osken_reference as ofencode
from tests.fakes.ovs_reference import ovs_actions
from tests.unit.test_wire import DP, osken_bytes

ACL = Stage.IN_PORT_SEC  # any stage will do: encoding does not check the pipeline


def same_as_osken(f) -> None:
    assert wire.flow_add(f) == osken_bytes(ofencode.flow_add(DP, f), 0), f.describe()


@given(zone=st.one_of(st.integers(0, 0xFFFF), st.sampled_from(["reg3", "reg5"])),
       commit=st.booleans(), table=st.sampled_from([None, Stage.IN_L2_LOOKUP]),
       mark=st.one_of(st.none(), st.integers(0, 2**32 - 1)))
def test_conntrack_encodes_as_osken_does(zone, commit: bool, table, mark) -> None:
    if mark is not None and not commit:
        mark = None  # ct_mark is only set on commit
    same_as_osken(flow(ACL, 100, {"reg0": 5001, "eth_type": 0x0800},
                       [Ct(commit=commit, zone=zone, table=table, mark=mark)]))


@given(state=st.sampled_from(["+trk", "-trk", "+trk+new", "+trk+est-rel", "+trk+inv",
                              "+trk+rel+rpl"]),
       zone=st.integers(0, 0xFFFF), mark=st.integers(0, 2**32 - 1))
def test_conntrack_matches_encode_as_osken_does(state: str, zone: int, mark: int) -> None:
    same_as_osken(flow(ACL, 100, {"ct_state": ct_state(state), "ct_zone": zone,
                                  "ct_mark": mark, "eth_type": 0x0800}, goto=Stage.IN_L2_LOOKUP))


@given(port=st.integers(0, 0xFFFF), bits=st.integers(0, 16),
       proto=st.sampled_from([("tcp_dst", 6), ("udp_dst", 17), ("tcp_src", 6),
                              ("udp_src", 17)]))
def test_masked_transport_ports_encode_as_osken_does(port: int, bits: int, proto) -> None:
    name, number = proto
    mask = (0xFFFF << (16 - bits)) & 0xFFFF
    same_as_osken(flow(ACL, 100, {"eth_type": 0x0800, "ip_proto": number,
                                  name: (port & mask, mask)}, [DecTtl(), Output(3)]))


def test_icmp_and_neighbour_discovery_fields_encode_as_osken_does() -> None:
    same_as_osken(flow(ACL, 100, {"eth_type": 0x0800, "ip_proto": 1, "icmpv4_type": 8,
                                  "icmpv4_code": 0}))
    same_as_osken(flow(ACL, 100, {"eth_type": 0x86DD, "ip_proto": 58, "icmpv6_type": 135,
                                  "icmpv6_code": 0, "ipv6_nd_target": "2001:db8::1",
                                  "ipv6_nd_sll": "02:00:00:00:00:01"},
                       [SetField("ipv6_nd_tll", "02:d0:ee:00:00:01"), Output(0xFFFFFFF8)]))


@pytest.mark.parametrize("reason", ["action", "no_match", "invalid_ttl"])
def test_meter_then_controller_encodes_as_osken_does(reason: str) -> None:
    same_as_osken(flow(ACL, 100, {"eth_type": 0x0806},
                       [Meter(7), Controller(max_len=128, reason=reason)],
                       goto=Stage.IN_L2_LOOKUP))


def test_two_meters_or_an_unknown_reason_are_refused() -> None:
    with pytest.raises(wire.EncodeError, match="one meter at most"):
        wire.flow_add(flow(ACL, 1, {}, [Meter(1), Meter(2)]))
    with pytest.raises(wire.EncodeError, match="no packet-in reason 'bored'"):
        wire.flow_add(flow(ACL, 1, {}, [Controller(reason="bored")]))


# --- punts metered apart from forwarding (docs/research/punts-ovs-3.1.md) -------------------

def test_a_metered_controller_action_is_nicira_controller2_byte_for_byte() -> None:
    """os-ken's NXActionController2 drops meter_id, so the reference is its generic
    experimenter action with the body OVS itself writes for controller(max_len=128,
    meter_id=1) (checked with `ovs-ofctl parse-actions OpenFlow13`)."""
    from os_ken.ofproto import nicira_ext

    parser = DP.ofproto_parser
    body = bytes.fromhex("000000000000" "0000000800800000" "0005000800000001")
    reference = parser.NXActionUnknown(nicira_ext.NXAST_CONTROLLER2, body)
    f = flow(ACL, 100, {"eth_type": 0x0806}, [Controller(max_len=128, meter_id=1)])
    theirs = ofencode.flow_add(DP, flow(ACL, 100, {"eth_type": 0x0806}))
    theirs.instructions = [parser.OFPInstructionActions(DP.ofproto.OFPIT_APPLY_ACTIONS,
                                                        [reference])]
    theirs.cookie = f.cookie
    assert wire.flow_add(f) == osken_bytes(theirs, 0)


@pytest.mark.parametrize(("action", "text"), [
    (Controller(max_len=128, meter_id=1), "controller(max_len=128,meter_id=1)"),
    (Controller(meter_id=7), "controller(max_len=65509,meter_id=7)"),
    (Controller(max_len=0xFFFF, reason="no_match", meter_id=3),
     "controller(reason=no_match,meter_id=3)"),
])
def test_ovs_reads_metered_punts_as_written(action: Controller, text: str) -> None:
    f = flow(ACL, 100, {"eth_type": 0x0806}, [action], goto=Stage.IN_L2_LOOKUP)
    assert ovs_actions(wire.flow_add(f)) == f"{text},goto_table:{Stage.IN_L2_LOOKUP.table}"


def test_a_punt_without_a_meter_keeps_its_encoding_and_its_cookie() -> None:
    assert repr(Controller(max_len=128)) == "Controller(max_len=128, reason='action')"
    same_as_osken(flow(ACL, 100, {"eth_type": 0x0806}, [Controller(max_len=128)]))


@pytest.mark.parametrize(("meter_id", "command"), [(1, "ADD"), (0xFFFFFFFE, "MODIFY")])
def test_a_punt_meter_encodes_as_osken_does(meter_id: int, command: str) -> None:
    parser, ofp = DP.ofproto_parser, DP.ofproto
    theirs = parser.OFPMeterMod(DP, getattr(ofp, f"OFPMC_{command}"),
                                ofp.OFPMF_PKTPS | ofp.OFPMF_BURST, meter_id,
                                [parser.OFPMeterBandDrop(rate=100, burst_size=50)])
    ours = wire.meter_mod(meter_id, 100, 50, getattr(wire, f"OFPMC_{command}"), xid=7)
    assert ours == osken_bytes(theirs, 7)


def test_meter_ids_out_of_range_are_refused() -> None:
    with pytest.raises(wire.EncodeError, match="meter id"):
        wire.meter_mod(0, 100, 50)
    with pytest.raises(wire.EncodeError, match="meter id"):
        wire.flow_add(flow(ACL, 1, {}, [Controller(meter_id=0xFFFFFFFD)]))
