"""Routing between a tenant's networks, allowed only by its rules, statefully; on the fake
switches of the fabric (topology: tests/unit/pipeline/topology.py; policies/example.yaml lets
acme/web open TCP 5432 and ICMP to acme/db, nothing the other way)."""

from __future__ import annotations

import dataclasses

from ryu_dove.pipeline.compiler import GATEWAY_MAC, compile_switch
from ryu_dove.pipeline.stages import Stage
from ryu_dove.policy import Policy, Rule
from tests.fakes.br_int import Delivery, Packet
from tests.fakes.packets import icmp_echo, tcp, udp
from tests.unit.pipeline.topology import (
    DB1,
    DB2,
    GX1,
    POLICY,
    VNI,
    WEB1,
    WEB3,
    Fabric,
    build_directory,
    tunnel,
)


def via_gateway(build, src, dst, *args, **kw) -> Packet:
    """What a VM sends to an address of another network: to its gateway's MAC."""
    return build(src.mac, GATEWAY_MAC, src.ips[0], dst.ips[0], *args, **kw)


def carry(fabric: Fabric, src_hv: str, out: list[Delivery]) -> list[Delivery]:
    """Take a packet sent into a tunnel on to the hypervisor at the other end."""
    (d,) = out
    dst_hv = next(hv for hv in fabric.switches if d.port == tunnel(hv))
    return fabric.receive(dst_hv, src_hv, d.tunnel_id, d.packet)


def test_an_allowed_connection_is_routed_there_and_its_replies_come_back() -> None:
    fabric = Fabric(build_directory())
    out = fabric.send(WEB1, via_gateway(tcp, WEB1, DB2, 40000, 5432))
    (d,) = out
    assert (d.port, d.tunnel_id) == (tunnel("hv3"), VNI["acme/db"])  # straight to db2's host
    assert (d.packet["eth_src"], d.packet["eth_dst"]) == (GATEWAY_MAC, DB2.mac)
    assert d.packet["nw_ttl"] == 63
    (arrived,) = carry(fabric, "hv1", out)
    assert arrived.port == DB2.ofport
    reply = fabric.send(DB2, via_gateway(tcp, DB2, WEB1, 5432, 40000))
    (back,) = carry(fabric, "hv3", reply)
    assert (back.port, back.packet["eth_src"]) == (WEB1.ofport, GATEWAY_MAC)


def test_the_other_direction_cannot_open_a_connection() -> None:
    fabric = Fabric(build_directory())
    assert fabric.send(DB2, via_gateway(tcp, DB2, WEB1, 40000, 5432)) == []
    assert fabric.send(DB1, via_gateway(icmp_echo, DB1, WEB1, 7)) == []


def test_only_the_rule_s_protocol_and_port_pass() -> None:
    fabric = Fabric(build_directory())
    assert fabric.send(WEB1, via_gateway(tcp, WEB1, DB2, 40000, 5433)) == []
    assert fabric.send(WEB1, via_gateway(udp, WEB1, DB2, 40000, 5432)) == []
    (ping,) = fabric.send(WEB1, via_gateway(icmp_echo, WEB1, DB2, 9))
    assert ping.port == tunnel("hv3")


def test_on_one_hypervisor_too_both_ways_as_the_rules_say() -> None:
    fabric = Fabric(build_directory())
    (d,) = fabric.send(WEB1, via_gateway(tcp, WEB1, DB1, 40001, 5432))
    assert (d.port, d.packet["eth_dst"]) == (DB1.ofport, DB1.mac)
    (back,) = fabric.send(DB1, via_gateway(tcp, DB1, WEB1, 5432, 40001))
    assert back.port == WEB1.ofport
    assert fabric.send(DB1, via_gateway(tcp, DB1, WEB1, 40002, 5432)) == []


def test_from_a_hypervisor_that_does_not_host_the_destination_network() -> None:
    fabric = Fabric(build_directory())  # hv2 hosts web3 and no acme/db
    out = fabric.send(WEB3, via_gateway(tcp, WEB3, DB2, 40003, 5432))
    (arrived,) = carry(fabric, "hv2", out)
    assert arrived.port == DB2.ofport


def test_another_tenant_at_the_same_address_is_not_routed() -> None:
    fabric = Fabric(build_directory())  # gx1 has web1's address, in globex (no rules)
    assert fabric.send(GX1, via_gateway(tcp, GX1, DB1, 40000, 5432)) == []


def test_an_address_nobody_holds_is_dropped_at_the_source() -> None:
    fabric = Fabric(build_directory())
    packet = tcp(WEB1.mac, GATEWAY_MAC, WEB1.ips[0], "198.51.100.99", 40000, 5432)
    assert fabric.send(WEB1, packet) == []


def test_a_packet_with_ttl_1_is_not_routed() -> None:
    fabric = Fabric(build_directory())
    assert fabric.send(WEB1, via_gateway(tcp, WEB1, DB1, 40000, 5432, ttl=1)) == []


def test_a_forged_routed_packet_from_a_tunnel_still_needs_a_rule() -> None:
    """A peer claiming to have routed db -> web traffic: web's end tracks, and its
    conntrack and rules refuse it as they would at the source."""
    fabric = Fabric(build_directory())
    forged = tcp(GATEWAY_MAC, WEB1.mac, DB2.ips[0], WEB1.ips[0], 40000, 22)
    assert fabric.receive("hv1", "hv3", VNI["acme/web"], forged) == []


def test_a_forged_packet_to_the_responding_end_needs_a_rule_s_opening_shape() -> None:
    """db's end does not track web -> db connections (web opens them): what arrives there
    is checked statelessly, and only what opens by a rule passes, never a reply's shape."""
    fabric = Fabric(build_directory())
    def forged(sport: int, dport: int) -> Packet:
        return tcp(GATEWAY_MAC, DB2.mac, WEB1.ips[0], DB2.ips[0], sport, dport)
    assert fabric.receive("hv3", "hv1", VNI["acme/db"], forged(40000, 22)) == []
    assert fabric.receive("hv3", "hv1", VNI["acme/db"], forged(5432, 22)) == []
    assert fabric.receive("hv3", "hv1", VNI["acme/db"], forged(22, 40000)) == []
    (d,) = fabric.receive("hv3", "hv1", VNI["acme/db"], forged(40000, 5432))
    assert d.port == DB2.ofport  # as a real web VM's would


def test_one_conntrack_per_connection_at_the_opening_end() -> None:
    """Every packet of a connection between hypervisors passes conntrack once: where the
    network that opens it (web) is; the other end keeps no state."""
    fabric = Fabric(build_directory())
    opened = carry(fabric, "hv1", fabric.send(WEB1, via_gateway(tcp, WEB1, DB2, 40000, 5432)))
    assert [d.port for d in opened] == [DB2.ofport]
    back = carry(fabric, "hv3", fabric.send(DB2, via_gateway(tcp, DB2, WEB1, 5432, 40000)))
    assert [d.port for d in back] == [WEB1.ofport]
    assert [(c.src, c.dst, c.dport, c.replied) for c in fabric.switches["hv1"].dump_conntrack()] \
        == [(WEB1.ips[0], DB2.ips[0], 5432, True)]
    assert fabric.switches["hv3"].dump_conntrack() == []


def _acme_with(*rules: Rule) -> Policy:
    acme = POLICY.tenants["acme"]
    return Policy({**POLICY.tenants, "acme": dataclasses.replace(acme, rules=rules)})


def _tcp_rule(src: str, dst: str, port: int) -> Rule:
    tcp_rule = next(r for r in POLICY.tenants["acme"].rules if r.proto == "tcp")
    return dataclasses.replace(tcp_rule, src=src, dst=dst, ports=(port, port))


def test_the_end_that_opens_tracks_whichever_network_it_is() -> None:
    """A rule db -> web only: db's end tracks, web's checks statelessly; a peer forging
    web -> db from the rule's port (a reply's shape) reaches nothing."""
    fabric = Fabric(build_directory(), _acme_with(_tcp_rule("db", "web", 8080)))
    assert fabric.send(DB2, via_gateway(tcp, DB2, WEB1, 40000, 22)) == []  # at the source
    opened = carry(fabric, "hv3", fabric.send(DB2, via_gateway(tcp, DB2, WEB1, 40000, 8080)))
    assert [d.port for d in opened] == [WEB1.ofport]
    back = carry(fabric, "hv1", fabric.send(WEB1, via_gateway(tcp, WEB1, DB2, 8080, 40000)))
    assert [d.port for d in back] == [DB2.ofport]
    forged = tcp(GATEWAY_MAC, DB2.mac, WEB1.ips[0], DB2.ips[0], 8080, 22)
    assert fabric.receive("hv3", "hv1", VNI["acme/db"], forged) == []
    # A reply's shape leaves web's end (it only keeps junk off the underlay); db's
    # conntrack, where the connection would have to be, refuses it.
    assert carry(fabric, "hv1", fabric.send(WEB1, via_gateway(tcp, WEB1, DB2, 8080, 22))) == []
    assert fabric.switches["hv1"].dump_conntrack() == []
    assert len(fabric.switches["hv3"].dump_conntrack()) == 1


def test_rules_both_ways_are_tracked_at_both_ends() -> None:
    """web -> db 5432 and db -> web 8080: each end opens, so each tracks, and a reply's
    shape never opens anything at either."""
    fabric = Fabric(build_directory(), _acme_with(_tcp_rule("web", "db", 5432),
                                                  _tcp_rule("db", "web", 8080)))
    for src, dst, src_hv, port in ((WEB1, DB2, "hv1", 5432), (DB2, WEB1, "hv3", 8080)):
        opened = carry(fabric, src_hv, fabric.send(src, via_gateway(tcp, src, dst, 40000, port)))
        assert [d.port for d in opened] == [dst.ofport]
        back_hv = "hv3" if src_hv == "hv1" else "hv1"
        back = carry(fabric, back_hv, fabric.send(dst, via_gateway(tcp, dst, src, port, 40000)))
        assert [d.port for d in back] == [src.ofport]
    for hv in ("hv1", "hv3"):
        assert len(fabric.switches[hv].dump_conntrack()) == 2
    forged = tcp(GATEWAY_MAC, DB2.mac, WEB1.ips[0], DB2.ips[0], 8080, 22)
    assert fabric.receive("hv3", "hv1", VNI["acme/db"], forged) == []


def test_removing_a_rule_ends_its_connections_and_adding_it_back_opens_the_path() -> None:
    directory = build_directory()
    fabric = Fabric(directory)
    hv1 = fabric.switches["hv1"]
    assert fabric.send(WEB1, via_gateway(tcp, WEB1, DB1, 40010, 5432))  # open
    acme = POLICY.tenants["acme"]
    no_tcp = _acme_with(*(r for r in acme.rules if r.proto != "tcp"))
    hv1.reload(compile_switch(no_tcp, directory, "hv1"))
    assert fabric.send(WEB1, via_gateway(tcp, WEB1, DB1, 40010, 5432)) == []  # established
    assert fabric.send(DB1, via_gateway(tcp, DB1, WEB1, 5432, 40010)) == []  # and its replies
    assert fabric.send(WEB1, via_gateway(icmp_echo, WEB1, DB1, 3))  # the other rule stands
    hv1.reload(compile_switch(POLICY, directory, "hv1"))
    assert fabric.send(DB1, via_gateway(tcp, DB1, WEB1, 5432, 40010))  # allowed again


def test_a_connection_another_rule_allows_outlives_the_rule_that_opened_it() -> None:
    """Removing the rule that opened a connection cuts it only if no other rule allows it:
    a remaining rule takes it over (re-marked by its next packet the opening way)."""
    acme = POLICY.tenants["acme"]
    tcp_rule = next(r for r in acme.rules if r.proto == "tcp")
    broad = dataclasses.replace(tcp_rule, proto="any", ports=None)
    both = _acme_with(*acme.rules, broad)
    only_broad = _acme_with(*(r for r in (*acme.rules, broad) if r is not tcp_rule))
    directory = build_directory()
    fabric = Fabric(directory, both)
    hv1 = fabric.switches["hv1"]
    assert fabric.send(WEB1, via_gateway(tcp, WEB1, DB1, 40020, 5432))  # opened by tcp_rule
    assert fabric.send(DB1, via_gateway(tcp, DB1, WEB1, 5432, 40020))
    hv1.reload(compile_switch(only_broad, directory, "hv1"))
    assert fabric.send(WEB1, via_gateway(tcp, WEB1, DB1, 40020, 5432))  # kept, re-marked
    assert fabric.send(DB1, via_gateway(tcp, DB1, WEB1, 5432, 40020))  # and its replies
    hv1.reload(compile_switch(POLICY, directory, "hv1"))  # broad gone too: tcp_rule only
    assert fabric.send(WEB1, via_gateway(tcp, WEB1, DB1, 40020, 5432))  # tcp_rule allows it
    without_tcp = _acme_with(*(r for r in acme.rules if r is not tcp_rule))
    hv1.reload(compile_switch(without_tcp, directory, "hv1"))
    assert fabric.send(WEB1, via_gateway(tcp, WEB1, DB1, 40020, 5432)) == []  # nothing does
    assert fabric.send(DB1, via_gateway(tcp, DB1, WEB1, 5432, 40020)) == []


def test_no_switch_both_delivers_and_tunnels_one_address() -> None:
    """A tunnel flow sits above local delivery in in_l3_lookup (a packet still to be tracked
    must not take the local one first), so one of each for an address would send it away:
    every switch has at most one lookup flow per (network, address)."""
    directory = build_directory()
    for hv in directory.hypervisors():
        seen: dict[tuple[object, ...], int] = {}
        for f in compile_switch(POLICY, directory, hv.name):
            if f.stage is Stage.IN_L3_LOOKUP and f.priority and "reg5" not in f.match_dict:
                key = tuple(v for k, v in f.match if k != "reg1")
                seen[key] = seen.get(key, 0) + 1
        assert seen and max(seen.values()) == 1, hv.name
