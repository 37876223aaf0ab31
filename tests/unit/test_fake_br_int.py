"""The fake switch itself: it must be right before it can judge the compiler."""

from __future__ import annotations

import pytest

from ryu_dove.pipeline.flows import (
    CT_EST,
    CT_INV,
    CT_NEW,
    CT_REL,
    CT_RPL,
    CT_TRK,
    IN_PORT,
    Action,
    Controller,
    Ct,
    DecTtl,
    FlowError,
    MatchValue,
    Meter,
    Move,
    Output,
    SetField,
    check_flow,
    ct_state,
    flow,
)
from ryu_dove.pipeline.stages import Stage
from tests.fakes.br_int import (
    BROADCAST_MAC,
    CONTROLLER,
    ETH_ARP,
    ETH_IPV4,
    ETH_IPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    TCP_ACK,
    TCP_SYN,
    AmbiguousMatch,
    ConnEntry,
    FakeBrInt,
    FakeTableError,
    InvalidFlow,
    Packet,
    arp_request,
    icmp_echo,
    icmp_error,
    ip,
    ipv4,
    ipv6,
    reply,
    tcp,
    udp,
)

CLASSIFY, PORT_SEC, L2 = Stage.IN_CLASSIFY, Stage.IN_PORT_SEC, Stage.IN_L2_LOOKUP
ROUTE = Stage.IN_L3_ROUTE  # a stage IN_CLASSIFY may recirculate to
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


# --- conntrack ------------------------------------------------------------------------------
# The fake does not check stages (flows.check_flow does): ACL stands for whatever table the
# routing issue gives the verdicts, and IN_PORT_SEC will do for it here.

ACL = PORT_SEC
IP4, IP6 = {"eth_type": ETH_IPV4}, {"eth_type": ETH_IPV6}
IP_A, IP_B = "10.0.0.1", "10.0.0.2"
SYN = tcp(MAC_A, MAC_B, IP_A, IP_B, 40000, 80, flags=TCP_SYN)
DNS = udp(MAC_A, MAC_B, IP_A, IP_B, 5353, 53)
PEER = {1: 2, 2: 1, 3: 4, 4: 3}  # two tenants: ports 1 <-> 2 in zone 1, 3 <-> 4 in zone 2
ZONE = {1: 1, 2: 1, 3: 2, 4: 2}
OPENERS = (1, 3)


def firewall(commit: bool = True) -> FakeBrInt:
    """Ports 1 and 3 may open connections to their peers, who may only answer. The zone comes
    from reg3, set per port; the verdicts are taken on the tracked copy in ACL."""
    flows = []
    for port, peer in PEER.items():
        ip_in: dict[str, MatchValue] = {**IP4, "in_port": port}
        flows += [
            flow(CLASSIFY, 1, ip_in, [SetField("reg3", ZONE[port]), Ct(zone="reg3", table=ACL)]),
            flow(ACL, 20, {**ip_in, "ct_state": ct_state("+trk+est")}, [Output(peer)]),
            flow(ACL, 15, {**ip_in, "ct_state": ct_state("+trk+rel")}, [Output(peer)])]
        if port in OPENERS:
            opened: list[Action] = [Ct(commit=True, zone="reg3")] if commit else []
            flows.append(flow(ACL, 10, {**ip_in, "ct_state": ct_state("+trk+new")},
                              [*opened, Output(peer)]))
    return FakeBrInt(flows)


def probe(commit: bool = False, zone: int | str = 0) -> FakeBrInt:
    """ct for IPv4 and IPv6, then every tracked copy is punted: its metadata shows ct_state."""
    return FakeBrInt([flow(CLASSIFY, 1, match, [Ct(commit=commit, zone=zone, table=ACL)])
                      for match in (IP4, IP6)] + [flow(ACL, 1, {}, [Controller()])])


def ct_bits(switch: FakeBrInt, packet: Packet, in_port: int = 1) -> int:
    (punt,) = switch.send(packet, in_port).punted
    return punt.metadata["ct_state"]


def test_stateful_rule_a_opens_and_b_answers() -> None:
    fw = firewall()
    assert fw.outputs(SYN, in_port=1) == {2}
    assert fw.outputs(reply(SYN), in_port=2) == {1}
    assert fw.outputs({**SYN, "tcp_flags": TCP_ACK}, in_port=1) == {2}
    assert fw.dump_conntrack() == [ConnEntry(1, IPPROTO_TCP, IP_A, IP_B, 40000, 80, True)]


def test_stateful_rule_b_cannot_open_to_a() -> None:
    fw = firewall()
    assert fw.outputs(reply(SYN), in_port=2) == set()  # a SYN|ACK out of nowhere: +inv
    assert fw.outputs(tcp(MAC_B, MAC_A, IP_B, IP_A, 50000, 22, TCP_SYN), in_port=2) == set()
    assert fw.outputs(reply(DNS), in_port=2) == set()  # +new from b: no rule lets it through
    assert fw.dump_conntrack() == []


def test_commit_is_needed_before_est() -> None:
    plain, committing = probe(), probe(commit=True)
    assert ct_bits(plain, DNS) == ct_bits(committing, DNS) == CT_TRK | CT_NEW
    assert ct_bits(plain, reply(DNS), 2) == CT_TRK | CT_NEW  # nothing was stored
    assert ct_bits(committing, DNS) == CT_TRK | CT_NEW  # stored, but not answered yet
    assert ct_bits(committing, reply(DNS), 2) == CT_TRK | CT_EST | CT_RPL
    assert ct_bits(committing, DNS) == CT_TRK | CT_EST
    assert firewall(commit=False).outputs(SYN, in_port=1) == {2}
    assert firewall(commit=False).outputs(reply(SYN), in_port=2) == set()


def test_tcp_without_a_bare_syn_opens_nothing() -> None:
    switch = probe(commit=True)
    assert ct_bits(switch, {**SYN, "tcp_flags": TCP_ACK}) == CT_TRK | CT_INV
    assert switch.dump_conntrack() == []
    no_flags = tcp(MAC_A, MAC_B, IP_A, IP_B, 40001, 80)  # flags not modelled: like UDP
    assert ct_bits(switch, no_flags) == CT_TRK | CT_NEW
    assert ct_bits(switch, SYN) == CT_TRK | CT_NEW
    assert len(switch.dump_conntrack()) == 2


def test_zones_keep_tenants_with_the_same_addresses_apart() -> None:
    fw = firewall()
    assert fw.outputs(DNS, in_port=1) == {2}  # tenant 1 opens; tenant 2 uses the same IPs
    assert fw.outputs(reply(DNS), in_port=4) == set()  # +new in zone 2, from a non-opener
    assert fw.outputs(reply(DNS), in_port=2) == {1}
    assert fw.dump_conntrack(zone=2) == []
    assert [c.zone for c in fw.dump_conntrack(zone=1)] == [1]
    assert fw.outputs(DNS, in_port=3) == {4}  # and tenant 2's own connection is its own
    assert fw.outputs(reply(DNS), in_port=4) == {3}


def test_ct_zone_from_a_register_is_matchable() -> None:
    switch = FakeBrInt([
        flow(CLASSIFY, 1, {**IP4, "in_port": 1}, [SetField("reg3", 0x10007),
                                                  Ct(zone="reg3", table=ACL)]),
        flow(ACL, 1, {"ct_zone": 7}, [Output(7)]),  # zone=reg3[0..15]: the high bits go
    ])
    (out,) = switch.process(DNS, in_port=1)
    assert (out.port, out.metadata["ct_zone"], out.metadata["reg3"]) == (7, 7, 0x10007)


def test_related_icmp_error_passes_and_a_stray_one_does_not() -> None:
    fw = firewall()
    assert fw.outputs(DNS, in_port=1) == {2}
    unreachable = icmp_error(MAC_B, MAC_A, IP_B, IP_A, about=DNS)
    assert fw.outputs(unreachable, in_port=2) == {1}
    stray = icmp_error(MAC_B, MAC_A, IP_B, IP_A, about={**DNS, "udp_src": 9})
    assert fw.outputs(stray, in_port=2) == set()
    switch = probe(commit=True)
    ct_bits(switch, DNS)
    assert ct_bits(switch, unreachable, 2) == CT_TRK | CT_REL | CT_RPL
    expired = icmp_error(MAC_A, MAC_B, IP_A, IP_B, about=reply(DNS), icmp_type=11)
    assert ct_bits(switch, expired) == CT_TRK | CT_REL  # about a reply: goes the first way
    assert ct_bits(switch, stray, 2) == CT_TRK | CT_INV


def test_icmpv6_echo_is_tracked_and_neighbour_discovery_is_not() -> None:
    switch = probe(commit=True)
    ping = icmp_echo(MAC_A, MAC_B, "fd00::1", "fd00::2", ident=7)
    pong = reply(ping)
    assert ct_bits(switch, pong, 2) == CT_TRK | CT_INV  # a reply cannot open a connection
    assert ct_bits(switch, ping) == CT_TRK | CT_NEW
    assert ct_bits(switch, pong, 2) == CT_TRK | CT_EST | CT_RPL
    assert ct_bits(switch, {**ping, "icmp_id": 8}) == CT_TRK | CT_NEW
    too_big = icmp_error(MAC_B, MAC_A, "fd00::2", "fd00::1", about=ping, icmp_type=2)
    assert ct_bits(switch, too_big, 2) == CT_TRK | CT_REL | CT_RPL
    solicit = {**ipv6(MAC_A, MAC_B, "fd00::1", "fd00::2"), "icmpv6_type": 135}
    assert ct_bits(switch, solicit) == CT_TRK | CT_INV


def test_recirculation_forks_a_tracked_copy_and_the_original_goes_on_untracked() -> None:
    switch = FakeBrInt([
        flow(CLASSIFY, 1, IP4, [Ct(zone=7, table=ROUTE), Output(9)], goto=PORT_SEC),
        flow(PORT_SEC, 1, {"ct_state": ct_state("-trk")}, [Controller()]),
        flow(ROUTE, 1, {"ct_state": ct_state("+trk+new")}, [Controller()]),
    ])
    fate = switch.send(DNS, in_port=1)
    assert [d.port for d in fate.deliveries] == [9, CONTROLLER, CONTROLLER]
    original, tracked = fate.punted
    assert (original.metadata["ct_state"], original.metadata["ct_zone"]) == (0, 0)
    assert (tracked.metadata["ct_state"], tracked.metadata["ct_zone"]) == (CT_TRK | CT_NEW, 7)
    assert [f.stage for f in fate.path] == [CLASSIFY, PORT_SEC, ROUTE]
    assert "ct_state" not in tracked.packet


def test_after_ct_without_table_the_packet_is_untracked() -> None:
    switch = FakeBrInt([
        flow(CLASSIFY, 1, IP4, [Ct(table=PORT_SEC)]),
        flow(PORT_SEC, 1, {**IP4, "ct_state": ct_state("+trk")}, [Ct(commit=True)], goto=L2),
        flow(L2, 1, {"ct_state": ct_state("-trk")}, [Output(5)]),
        flow(L2, 1, {"ct_state": ct_state("+trk")}, [Output(6)]),
    ])
    assert switch.outputs(DNS, in_port=1) == {5}
    assert len(switch.dump_conntrack()) == 1  # committed all the same


def test_recirculation_into_the_same_table_and_loops() -> None:
    untracked_first = FakeBrInt([
        flow(CLASSIFY, 2, {**IP4, "ct_state": ct_state("-trk")}, [Ct(table=CLASSIFY)]),
        flow(CLASSIFY, 2, {**IP4, "ct_state": ct_state("+trk")}, [Output(2)])])
    assert untracked_first.outputs(DNS, in_port=1) == {2}
    loop = FakeBrInt([flow(CLASSIFY, 1, IP4, [Ct(table=CLASSIFY)])])
    with pytest.raises(FakeTableError, match="recirculated"):
        loop.process(DNS, in_port=1)


@pytest.mark.parametrize(("match", "action", "problem"), [
    ({}, Ct(), "needs eth_type"),
    ({"eth_type": ETH_ARP}, Ct(), "needs eth_type"),
    ({**IP4, "ct_state": ct_state("+trk+inv")}, Ct(commit=True), r"commit\) of \+inv"),
    (IP4, Ct(zone="eth_src"), "from a register"),
    (IP4, Ct(zone=0x10000), "16 bits"),
    ({}, DecTtl(), "needs eth_type"),
    (IP4, SetField("ct_state", CT_TRK), "read-only"),
    (IP4, Move("reg0", "ct_zone", 16), "read-only"),
    (IP4, SetField("ip_proto", 6), "read-only"),
    ({}, Controller(reason="because"), "no such packet-in"),
])
def test_new_actions_are_checked_as_ovs_would(match: dict[str, MatchValue], action: Action,
                                              problem: str) -> None:
    with pytest.raises(InvalidFlow, match=problem):
        FakeBrInt([flow(CLASSIFY, 1, match, [action])])


def test_flush_ends_est() -> None:
    fw = firewall()
    fw.outputs(SYN, in_port=1)
    assert fw.outputs(reply(SYN), in_port=2) == {1}
    fw.flush_conntrack(zone=2)  # the other tenant's zone: nothing of ours goes
    assert fw.outputs(reply(SYN), in_port=2) == {1}
    fw.flush_conntrack(zone=1)
    assert fw.dump_conntrack() == []
    assert fw.outputs(reply(SYN), in_port=2) == set()
    fw.outputs(DNS, in_port=1)
    fw.outputs(DNS, in_port=3)
    fw.flush_conntrack()
    assert fw.dump_conntrack() == []


def test_trace_is_a_dry_run() -> None:
    fw = firewall()
    assert [f.stage for f in fw.trace(SYN, in_port=1)] == [CLASSIFY, ACL]
    assert fw.dump_conntrack() == []
    assert fw.outputs(reply(SYN), in_port=2) == set()


# --- dec_ttl, rewrites, meters, controller ---------------------------------------------------

def test_dec_ttl_decrements_and_drops_at_one() -> None:
    switch = FakeBrInt([flow(CLASSIFY, 1, IP4, [Output(3), DecTtl(), Output(2)], goto=L2),
                        flow(CLASSIFY, 1, IP6, [DecTtl(), Output(2)]),
                        flow(L2, 1, {}, [Output(4)])])
    before, after, _ = switch.process(DNS, in_port=1)
    assert (before.port, before.packet["nw_ttl"], after.port, after.packet["nw_ttl"]) == \
        (3, 64, 2, 63)
    for ttl in (1, 0):  # the actions after dec_ttl and the goto do not run
        fate = switch.send({**DNS, "nw_ttl": ttl}, in_port=1)
        assert ([d.port for d in fate.deliveries], fate.drops) == ([3], ("invalid_ttl",))
    (hop,) = switch.process(ip(MAC_A, MAC_B, "fd00::1", "fd00::2", IPPROTO_UDP, 2), in_port=1)
    assert hop.packet["nw_ttl"] == 1  # IPv6's hop limit is nw_ttl too, as in OVS
    with pytest.raises(FakeTableError, match="nw_ttl"):
        switch.process(PKT, in_port=1)


def test_set_field_rewrites_headers_and_registers() -> None:
    match: dict[str, MatchValue] = {**IP4, "ip_proto": IPPROTO_UDP}
    switch = FakeBrInt([flow(CLASSIFY, 1, match, [
        SetField("eth_src", "02:00:00:00:00:01"), SetField("eth_dst", MAC_A),
        SetField("ipv4_dst", "192.0.2.7"), SetField("udp_dst", 5300), SetField("nw_ttl", 9),
        SetField("reg5", 3), Output(2)])])
    (out,) = switch.process(DNS, in_port=1)
    assert out.packet == {**DNS, "eth_src": "02:00:00:00:00:01", "eth_dst": MAC_A,
                          "ipv4_dst": "192.0.2.7", "udp_dst": 5300, "nw_ttl": 9}
    assert out.metadata["reg5"] == 3


def test_meter_caps_the_rate_and_recovers_the_next_second() -> None:
    now = [0.0]
    switch = FakeBrInt([flow(CLASSIFY, 1, {}, [Meter(3), Output(2)], goto=L2),
                        flow(L2, 1, {}, [Output(4)])],
                       meters={3: 2}, clock=lambda: now[0])
    assert [switch.outputs(PKT, in_port=1) for _ in range(2)] == [{2, 4}, {2, 4}]
    now[0] = 0.9
    fate = switch.send(PKT, in_port=1)
    assert (fate.deliveries, fate.drops) == ((), ("meter:3",))
    now[0] = 1.0
    assert [switch.outputs(PKT, in_port=1) for _ in range(3)] == [{2, 4}, {2, 4}, set()]


@pytest.mark.parametrize("actions", [
    [Meter(4), Output(2)],  # no such meter on the switch
    [Output(2), Meter(3)],  # OpenFlow 1.3: the meter instruction runs first
    [Meter(3), Meter(3)],
])
def test_meters_must_exist_and_come_first(actions: list[Action]) -> None:
    with pytest.raises(InvalidFlow, match="meter"):
        FakeBrInt([flow(CLASSIFY, 1, {}, actions)], meters={3: 10})


def test_controller_output_is_the_packet_as_it_was_then() -> None:
    switch = FakeBrInt([flow(CLASSIFY, 1, {}, [
        SetField("reg0", 7), Controller(), SetField("eth_dst", BROADCAST_MAC), Output(2)])])
    fate = switch.send(PKT, in_port=1)
    (punt,) = fate.punted
    assert (punt.port, punt.reason, punt.packet) == (CONTROLLER, "action", PKT)
    assert (punt.metadata["in_port"], punt.metadata["reg0"]) == (1, 7)
    assert fate.deliveries[1].packet["eth_dst"] == BROADCAST_MAC
    assert switch.outputs(PKT, in_port=1) == {CONTROLLER, 2}


# --- the new actions as Flow values ------------------------------------------------------------

NEW_ACTIONS: list[Action] = [
    Ct(), Ct(commit=True), Ct(zone=5), Ct(zone="reg3"), Ct(table=L2),
    Ct(commit=True, zone=5, table=L2), DecTtl(), Meter(3), Meter(4),
    Controller(), Controller(max_len=128), Controller(reason="no_match")]


def test_new_actions_give_distinct_cookies() -> None:
    cookies = [flow(CLASSIFY, 1, {}, [a]).cookie for a in NEW_ACTIONS]
    assert len(set(cookies)) == len(NEW_ACTIONS)
    assert cookies == [flow(CLASSIFY, 1, {}, [a]).cookie for a in NEW_ACTIONS]


def test_new_actions_cookies_do_not_change_between_runs() -> None:
    """Ct names its stage: the Enum's own repr holds a frozenset, printed in hash-seed order."""
    f = flow(CLASSIFY, 10, {**IP4, "ct_state": ct_state("-trk")},
             [Meter(3), Ct(commit=True, zone="reg3", table=PORT_SEC), DecTtl(), Controller()])
    assert f.cookie == 0xD001EE8918328117
    assert repr(f.actions) == ("(Meter(meter_id=3), "
                               "Ct(commit=True, zone='reg3', table=Stage.IN_PORT_SEC, "
                               "mark=None), "
                               "DecTtl(), Controller(max_len=65509, reason='action'))")


def test_describe_prints_the_new_actions() -> None:
    f = flow(CLASSIFY, 5, {**IP4, "ct_state": ct_state("+trk-est")}, [
        Meter(3), Ct(commit=True, zone=5, table=L2), Ct(zone="reg3"), Ct(), DecTtl(),
        Controller(), Controller(max_len=128, reason="no_match")])
    assert f.describe() == (
        "in_classify prio=5 ct_state=-est+trk,eth_type=2048 actions=meter:3,"
        "ct(commit,zone=5,table=in_l2_lookup),ct(zone=reg3[0..15]),ct,dec_ttl,controller,"
        "controller(reason=no_match,max_len=128)")


def test_ct_state_flags() -> None:
    assert ct_state("+trk+est-rel") == (CT_TRK | CT_EST, CT_TRK | CT_EST | CT_REL)
    assert ct_state("-trk") == (0, CT_TRK)
    for bad in ("trk", "+trk est", "+bogus", ""):
        with pytest.raises(ValueError):
            ct_state(bad)


def test_check_flow_lets_ct_recirculate_only_to_a_next_stage() -> None:
    check_flow(flow(CLASSIFY, 1, {"in_port": 1}, [Ct(table=ROUTE)]))
    with pytest.raises(FlowError, match="may not recirculate to OUT_TUNNEL"):
        check_flow(flow(CLASSIFY, 1, {"in_port": 1}, [Ct(table=Stage.OUT_TUNNEL)]))


def test_a_connection_keeps_the_mark_it_was_committed_with_both_ways() -> None:
    """ct(commit, exec(set_field:M->ct_mark)): the mark rides with the connection, so a
    later stage can tell which rule let it open (and drop it once that rule is gone)."""
    allowed = {**IP4, "ct_state": ct_state("+trk+new")}
    table = FakeBrInt([
        flow(CLASSIFY, 1, IP4, [Ct(zone=4, table=ACL)]),
        flow(ACL, 2, allowed, [Ct(commit=True, zone=4, mark=0xBEEF), Output(2)]),
        flow(ACL, 2, {**IP4, "ct_state": ct_state("+trk+est"), "ct_mark": 0xBEEF},
             [Output(1)]),
    ])
    request = {**IP4, "ip_proto": 6, "ipv4_src": "198.51.100.10",
               "ipv4_dst": "198.51.100.70", "tcp_src": 40000, "tcp_dst": 5432}
    reply = {**IP4, "ip_proto": 6, "ipv4_src": "198.51.100.70",
             "ipv4_dst": "198.51.100.10", "tcp_src": 5432, "tcp_dst": 40000}
    assert [d.port for d in table.send(request, in_port=1).deliveries] == [2]
    (back,) = table.send(reply, in_port=2).deliveries
    assert (back.port, back.metadata["ct_mark"]) == (1, 0xBEEF)


def test_a_metered_punt_drops_only_its_copy_and_the_packet_goes_on() -> None:
    from ryu_dove.pipeline.flows import Controller
    from ryu_dove.pipeline.stages import Stage
    from tests.fakes.br_int import CONTROLLER, FakeBrInt, InvalidFlow, arp_request

    punt = flow(Stage.IN_CLASSIFY, 100, {"in_port": 1},
                [Controller(max_len=128, meter_id=1), Output(2)])
    switch = FakeBrInt([punt], meters={1: 2})  # 2 per second, and the clock stands still
    fates = [switch.send(arp_request("02:00:00:00:00:01", "198.51.100.10", "198.51.100.11"),
                         in_port=1) for _ in range(5)]
    assert [sorted(d.port for d in f.deliveries) for f in fates] == [
        sorted([2, CONTROLLER])] * 2 + [[2]] * 3
    assert fates[4].drops == ("meter:1",)
    with pytest.raises(InvalidFlow, match="meter 1 does not exist"):
        FakeBrInt([punt])
