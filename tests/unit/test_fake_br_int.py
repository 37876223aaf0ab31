"""The fake switch itself: it must be right before it can judge the compiler."""

from __future__ import annotations

import pytest

from ryu_dove.pipeline.flows import IN_PORT, MatchValue, Move, Output, SetField, flow
from ryu_dove.pipeline.stages import Stage
from tests.fakes.br_int import (
    BROADCAST_MAC,
    ETH_ARP,
    AmbiguousMatch,
    FakeBrInt,
    InvalidFlow,
    arp_request,
    ipv4,
    ipv6,
)

CLASSIFY, PORT_SEC, L2 = Stage.IN_CLASSIFY, Stage.IN_PORT_SEC, Stage.IN_L2_LOOKUP
MAC_A, MAC_B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
PKT = ipv4(MAC_A, MAC_B, "10.0.0.1", "10.0.0.2")


def test_no_flow_drops() -> None:
    assert FakeBrInt([]).process(PKT, in_port=1) == []


def test_highest_priority_wins() -> None:
    switch = FakeBrInt([flow(CLASSIFY, 10, {}, [Output(2)]),
                         flow(CLASSIFY, 20, {"eth_dst": MAC_B}, [Output(3)])])
    assert switch.outputs(PKT, in_port=1) == {3}
    assert switch.outputs({**PKT, "eth_dst": MAC_A}, in_port=1) == {2}


def test_equal_priority_overlap_is_an_error() -> None:
    switch = FakeBrInt([flow(CLASSIFY, 10, {"in_port": 1}, [Output(2)]),
                         flow(CLASSIFY, 10, {"eth_src": MAC_A}, [Output(3)])])
    assert switch.outputs({**PKT, "eth_src": MAC_B}, in_port=1) == {2}
    with pytest.raises(AmbiguousMatch, match="2 flows match"):
        switch.process(PKT, in_port=1)


def test_same_match_different_actions_is_an_error() -> None:
    with pytest.raises(InvalidFlow, match="different actions"):
        FakeBrInt([flow(CLASSIFY, 10, {"in_port": 1}, [Output(2)]),
                    flow(CLASSIFY, 10, {"in_port": 1}, [Output(3)])])


def test_goto_carries_registers_and_miss_in_next_table_drops() -> None:
    switch = FakeBrInt([
        flow(CLASSIFY, 1, {"in_port": 1}, [SetField("reg0", 7)], goto=L2),
        flow(CLASSIFY, 1, {"in_port": 2}, [SetField("reg0", 8)], goto=L2),
        flow(L2, 1, {"reg0": 7}, [Output(5)]),
    ])
    assert switch.outputs(PKT, in_port=1) == {5}
    assert switch.outputs(PKT, in_port=2) == set()
    assert [f.stage for f in switch.trace(PKT, in_port=1)] == [CLASSIFY, L2]


def test_registers_start_at_zero_for_every_packet() -> None:
    switch = FakeBrInt([flow(CLASSIFY, 1, {"reg1": 0}, [SetField("reg1", 1), Output(2)])])
    assert switch.outputs(PKT, in_port=1) == {2}
    assert switch.outputs(PKT, in_port=1) == {2}


def test_goto_backwards_is_refused() -> None:
    with pytest.raises(InvalidFlow, match="later table"):
        FakeBrInt([flow(L2, 1, {}, goto=PORT_SEC)])


def test_masked_mac_matches_multicast_only() -> None:
    switch = FakeBrInt([
        flow(CLASSIFY, 1, {"eth_dst": ("01:00:00:00:00:00", "01:00:00:00:00:00")}, [Output(9)])])
    assert switch.outputs({**PKT, "eth_dst": BROADCAST_MAC}, in_port=1) == {9}
    assert switch.outputs({**PKT, "eth_dst": "33:33:00:00:00:01"}, in_port=1) == {9}
    assert switch.outputs(PKT, in_port=1) == set()


def test_masked_ipv6_prefix() -> None:
    switch = FakeBrInt([flow(CLASSIFY, 1, {"eth_type": 0x86DD, "ipv6_src": ("fe80::", "ffc0::")},
                              [Output(9)])])
    assert switch.outputs(ipv6(MAC_A, MAC_B, "fe80::1", "fe80::2"), in_port=1) == {9}
    assert switch.outputs(ipv6(MAC_A, MAC_B, "febf::1", "fe80::2"), in_port=1) == {9}
    assert switch.outputs(ipv6(MAC_A, MAC_B, "fec0::1", "fe80::2"), in_port=1) == set()


def test_masked_int() -> None:
    switch = FakeBrInt([flow(CLASSIFY, 1, {"tunnel_id": (0x100, 0xF00)}, [Output(9)])])
    assert switch.outputs(PKT, in_port=1, tunnel_id=0x1FF) == {9}
    assert switch.outputs(PKT, in_port=1, tunnel_id=0x2FF) == set()


def test_output_to_in_port_needs_in_port_action() -> None:
    plain = FakeBrInt([flow(CLASSIFY, 1, {}, [Output(1), Output(2)])])
    assert plain.outputs(PKT, in_port=1) == {2}
    back = FakeBrInt([flow(CLASSIFY, 1, {}, [Output(IN_PORT)])])
    assert back.outputs(PKT, in_port=1) == {1}


def test_delivery_is_the_packet_as_it_was_when_output() -> None:
    switch = FakeBrInt([flow(CLASSIFY, 1, {}, [
        Output(2), SetField("eth_dst", BROADCAST_MAC), SetField("tunnel_id", 42), Output(3)])])
    first, second = switch.process(PKT, in_port=1)
    assert (first.port, first.packet["eth_dst"], first.tunnel_id) == (2, MAC_B, 0)
    assert (second.port, second.packet["eth_dst"], second.tunnel_id) == (3, BROADCAST_MAC, 42)
    assert switch.tunnel_outputs(PKT, in_port=1) == {3: 42}
    assert "in_port" not in first.packet and "reg0" not in first.packet


def test_move_copies_macs_and_ips() -> None:
    match = {"eth_type": ETH_ARP}
    switch = FakeBrInt([flow(CLASSIFY, 1, match, [
        Move("eth_src", "eth_dst", 48), Move("arp_spa", "arp_tpa", 32),
        Move("arp_sha", "arp_tha", 48), Output(IN_PORT)])])
    (reply,) = switch.process(arp_request(MAC_A, "10.0.0.1", "10.0.0.2"), in_port=4)
    assert reply.packet["eth_dst"] == MAC_A
    assert reply.packet["arp_tha"] == MAC_A
    assert reply.packet["arp_tpa"] == "10.0.0.1"


def test_move_of_fewer_bits_keeps_the_high_bits() -> None:
    switch = FakeBrInt([flow(CLASSIFY, 1, {}, [
        SetField("reg0", 0xABCD), SetField("reg1", 0x1200),
        Move("reg0", "reg1", 8), Move("reg1", "tunnel_id", 32), Output(2)])])
    (out,) = switch.process(PKT, in_port=1)
    assert out.tunnel_id == 0x12CD


@pytest.mark.parametrize("match", [
    {"arp_tpa": "10.0.0.1"},                                   # no eth_type at all
    {"eth_type": 0x0800, "arp_tpa": "10.0.0.1"},               # the wrong one
    {"eth_type": (ETH_ARP, 0xFF00), "arp_op": 1},              # masked is not enough
    {"eth_type": 0x0800, "ipv6_src": "::1"},
    {"eth_type": 0x0800, "tcp_dst": 80},                       # no ip_proto
])
def test_match_prerequisites(match: dict[str, MatchValue]) -> None:
    with pytest.raises(InvalidFlow, match="needs"):
        FakeBrInt([flow(CLASSIFY, 1, match)])


def test_set_field_prerequisites() -> None:
    with pytest.raises(InvalidFlow, match="arp_op needs eth_type"):
        FakeBrInt([flow(CLASSIFY, 1, {}, [SetField("arp_op", 2)])])
    FakeBrInt([flow(CLASSIFY, 1, {"eth_type": ETH_ARP}, [SetField("arp_op", 2)])])


def test_unknown_field_is_refused() -> None:
    with pytest.raises(InvalidFlow, match="eth_dest"):
        FakeBrInt([flow(CLASSIFY, 1, {"eth_dest": MAC_A})])


def test_packet_without_the_field_does_not_match() -> None:
    switch = FakeBrInt([flow(CLASSIFY, 1, {"eth_type": 0x0800, "ipv4_src": "10.0.0.1"},
                              [Output(2)])])
    assert switch.outputs(PKT, in_port=1) == {2}
    assert switch.outputs(arp_request(MAC_A, "10.0.0.1", "10.0.0.2"), in_port=1) == set()
