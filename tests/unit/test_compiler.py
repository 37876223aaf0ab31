"""compile_switch judged by packet fate: the flows run on a fake switch, tests ask where
packets go. The topology below uses policies/example.yaml:

    hv1: web1 .10, web2 .11 (acme/web), db1 .70 (acme/db), gx1 .10, gx2 .11 (globex/web)
    hv2: web3 .12 (acme/web), gx3 .12 (globex/web)
    hv3: db2 .71 (acme/db)                      -- acme only
    hv4: web4 .13 (acme/web)                    -- acme only

acme/web and globex/web share 198.51.100.0/26, and their VMs share addresses on purpose.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ryu_dove.directory import Endpoint, Hypervisor, MemoryDirectory
from ryu_dove.pipeline import flowparts
from ryu_dove.pipeline.compiler import GATEWAY_MAC, Compiler, compile_switch
from ryu_dove.pipeline.flows import (
    Flow,
    FlowError,
    Move,
    Output,
    SetField,
    check_flow,
    flow,
    is_ours,
)
from ryu_dove.pipeline.stages import Stage
from ryu_dove.policy import Policy, load_policy
from tests.fakes.br_int import (
    ARP_REPLY,
    BROADCAST_MAC,
    Delivery,
    FakeBrInt,
    Packet,
    arp_request,
    ipv4,
    ipv6,
)

ROOT = Path(__file__).resolve().parents[2]
POLICY = load_policy([str(ROOT / "policies" / "example.yaml")])
HVS = ("hv1", "hv2", "hv3", "hv4")
VNI = {"acme/web": 5001, "acme/db": 5002, "globex/web": 6001}
UNKNOWN_VNI = 9999


def tunnel(remote: str) -> int:
    """The ofport of the tunnel to `remote`: the same number on every hypervisor."""
    return 100 + HVS.index(remote)


def hypervisor(name: str, names: Sequence[str] = HVS) -> Hypervisor:
    tunnels = {other: tunnel(other) for other in names if other != name}
    return Hypervisor(name, f"192.0.2.{HVS.index(name) + 1}", dpid=HVS.index(name) + 1,
                      tunnels=MappingProxyType(tunnels))


def vm(name: str, network: str, hv: str, ofport: int, ip: str, mac: str) -> Endpoint:
    return Endpoint(network, mac, (ip,), hv, f"tap-{name}", ofport, f"iface-{name}")


WEB1 = vm("web1", "acme/web", "hv1", 1, "198.51.100.10", "02:ac:00:00:00:01")
WEB2 = vm("web2", "acme/web", "hv1", 2, "198.51.100.11", "02:ac:00:00:00:02")
DB1 = vm("db1", "acme/db", "hv1", 3, "198.51.100.70", "02:ac:00:00:00:03")
GX1 = vm("gx1", "globex/web", "hv1", 4, "198.51.100.10", "02:9e:00:00:00:01")
GX2 = vm("gx2", "globex/web", "hv1", 5, "198.51.100.11", "02:9e:00:00:00:02")
WEB3 = vm("web3", "acme/web", "hv2", 1, "198.51.100.12", "02:ac:00:00:00:04")
GX3 = vm("gx3", "globex/web", "hv2", 2, "198.51.100.12", "02:9e:00:00:00:03")
DB2 = vm("db2", "acme/db", "hv3", 1, "198.51.100.71", "02:ac:00:00:00:05")
WEB4 = vm("web4", "acme/web", "hv4", 1, "198.51.100.13", "02:ac:00:00:00:06")
ALL = (WEB1, WEB2, DB1, GX1, GX2, WEB3, GX3, DB2, WEB4)


def build_directory(endpoints: Iterable[Endpoint] = ALL,
                    hvs: Sequence[str] = HVS) -> MemoryDirectory:
    directory = MemoryDirectory()
    eps = list(endpoints)
    for name in hvs:
        directory.put_hypervisor(hypervisor(name, hvs))
        directory.replace_endpoints(name, [e for e in eps if e.hypervisor == name])
    return directory


class Fabric:
    """Every hypervisor's br-int, compiled from one policy and directory."""

    def __init__(self, directory: MemoryDirectory, policy: Policy = POLICY) -> None:
        self.switches = {hv.name: FakeBrInt(compile_switch(policy, directory, hv.name))
                         for hv in directory.hypervisors()}

    def send(self, src: Endpoint, packet: Packet) -> list[Delivery]:
        return self.switches[src.hypervisor].process(packet, in_port=src.ofport)

    def receive(self, hv: str, remote: str, vni: int, packet: Packet) -> list[Delivery]:
        """`packet` arrives on `hv` from the tunnel to `remote`, with tunnel key `vni`."""
        return self.switches[hv].process(packet, in_port=tunnel(remote), tunnel_id=vni)


@pytest.fixture(scope="module")
def fabric() -> Fabric:
    return Fabric(build_directory())


def to(src: Endpoint, dst: Endpoint) -> Packet:
    return ipv4(src.mac, dst.mac, src.ips[0], dst.ips[0])


def broadcast(src: Endpoint) -> Packet:
    return ipv4(src.mac, BROADCAST_MAC, src.ips[0], "198.51.100.63", proto=17)


def ask(src: Endpoint, ip: str) -> Packet:
    return arp_request(src.mac, src.ips[0], ip)


def ports(deliveries: Iterable[Delivery]) -> set[int]:
    return {d.port for d in deliveries}


def keyed(deliveries: Iterable[Delivery]) -> dict[int, int]:
    """Port -> tunnel key of the copies sent into tunnels."""
    return {d.port: d.tunnel_id for d in deliveries if d.tunnel_id}


# --- unicast -------------------------------------------------------------------------------

def test_unicast_between_local_vms(fabric: Fabric) -> None:
    packet = to(WEB1, WEB2)
    assert fabric.send(WEB1, packet) == [Delivery(WEB2.ofport, packet, 0)]


def test_unicast_to_remote_vm_goes_out_its_tunnel_with_the_vni(fabric: Fabric) -> None:
    packet = to(WEB1, WEB3)
    assert fabric.send(WEB1, packet) == [Delivery(tunnel("hv2"), packet, VNI["acme/web"])]
    packet = to(WEB4, WEB1)
    assert fabric.send(WEB4, packet) == [Delivery(tunnel("hv1"), packet, VNI["acme/web"])]


def test_unicast_from_tunnel_reaches_the_local_vm(fabric: Fabric) -> None:
    packet = to(WEB3, WEB1)
    assert ports(fabric.receive("hv1", "hv2", VNI["acme/web"], packet)) == {WEB1.ofport}


def test_unicast_to_own_mac_is_not_reflected(fabric: Fabric) -> None:
    assert fabric.send(WEB1, to(WEB1, WEB1)) == []


# --- ARP -----------------------------------------------------------------------------------

@pytest.mark.parametrize("target", [WEB2, WEB3, WEB4], ids=["local", "remote", "other-remote"])
def test_arp_for_known_endpoint_is_answered_back_to_the_asker(fabric: Fabric,
                                                              target: Endpoint) -> None:
    (reply,) = fabric.send(WEB1, ask(WEB1, target.ips[0]))
    assert reply.port == WEB1.ofport
    assert reply.tunnel_id == 0
    assert reply.packet == {
        "eth_src": target.mac, "eth_dst": WEB1.mac, "eth_type": 0x0806, "arp_op": ARP_REPLY,
        "arp_sha": target.mac, "arp_spa": target.ips[0],
        "arp_tha": WEB1.mac, "arp_tpa": WEB1.ips[0],
    }


@pytest.mark.parametrize(("asker", "gateway"), [(WEB1, "198.51.100.1"), (DB1, "198.51.100.65"),
                                                (GX1, "198.51.100.1")])
def test_arp_for_the_gateway_is_answered_with_the_gateway_mac(fabric: Fabric, asker: Endpoint,
                                                              gateway: str) -> None:
    (reply,) = fabric.send(asker, ask(asker, gateway))
    assert reply.port == asker.ofport
    assert (reply.packet["eth_src"], reply.packet["arp_sha"]) == (GATEWAY_MAC, GATEWAY_MAC)
    assert (reply.packet["arp_spa"], reply.packet["arp_tpa"]) == (gateway, asker.ips[0])
    assert reply.packet["eth_dst"] == asker.mac


def test_arp_for_unknown_ip_stays_off_the_underlay(fabric: Fabric) -> None:
    request = ask(WEB1, "198.51.100.50")
    out = fabric.send(WEB1, request)
    assert ports(out) == {WEB2.ofport}  # local ports of the network; no tunnel
    assert all(d.packet == request for d in out)


def test_arp_for_unknown_ip_reaches_hypervisors_of_vms_bound_without_addresses() -> None:
    bare = Endpoint("acme/web", "02:ac:00:00:00:77", (), "hv4", "tap-bare", 2, "iface-bare")
    fabric = Fabric(build_directory([*ALL, bare]))
    request = ask(WEB1, "198.51.100.50")  # only `bare` could own it
    out = fabric.send(WEB1, request)
    assert ports(out) == {WEB2.ofport, tunnel("hv4")} and keyed(out) == {tunnel("hv4"): 5001}
    arrived = fabric.receive("hv4", "hv1", 5001, request)
    assert ports(arrived) == {WEB4.ofport, bare.ofport}  # from a tunnel: local ports only


def test_gratuitous_arp_is_flooded_not_answered(fabric: Fabric) -> None:
    announce = ask(WEB1, WEB1.ips[0])
    out = fabric.send(WEB1, announce)
    assert ports(out) == {WEB2.ofport, tunnel("hv2"), tunnel("hv4")}
    assert all(d.packet == announce for d in out)


def test_duplicate_address_probe_for_own_address_is_flooded_not_answered(
        fabric: Fabric) -> None:
    probe = arp_request(WEB1.mac, "0.0.0.0", WEB1.ips[0])
    out = fabric.send(WEB1, probe)
    assert ports(out) == {WEB2.ofport, tunnel("hv2"), tunnel("hv4")}
    assert all(d.packet == probe for d in out)


def test_duplicate_address_probe_for_a_taken_address_is_answered(fabric: Fabric) -> None:
    (reply,) = fabric.send(WEB1, arp_request(WEB1.mac, "0.0.0.0", WEB2.ips[0]))
    assert reply.port == WEB1.ofport and reply.packet["arp_sha"] == WEB2.mac


# --- broadcast scope -----------------------------------------------------------------------

def test_broadcast_from_vm_reaches_its_network_and_each_hosting_hypervisor_once(
        fabric: Fabric) -> None:
    out = fabric.send(WEB1, broadcast(WEB1))
    assert sorted(d.port for d in out) == sorted([WEB2.ofport, tunnel("hv2"), tunnel("hv4")])
    assert keyed(out) == {tunnel("hv2"): 5001, tunnel("hv4"): 5001}
    assert [d.tunnel_id for d in out if d.port == WEB2.ofport] == [0]


def test_broadcast_skips_hypervisors_without_the_network(fabric: Fabric) -> None:
    assert ports(fabric.send(DB1, broadcast(DB1))) == {tunnel("hv3")}
    assert ports(fabric.send(GX1, broadcast(GX1))) == {GX2.ofport, tunnel("hv2")}
    assert ports(fabric.send(DB2, broadcast(DB2))) == {tunnel("hv1")}


def test_broadcast_from_tunnel_stays_on_local_ports_of_the_network(fabric: Fabric) -> None:
    out = fabric.receive("hv1", "hv2", VNI["acme/web"], broadcast(WEB3))
    assert ports(out) == {WEB1.ofport, WEB2.ofport}  # no hairpin into tunnels
    out = fabric.receive("hv1", "hv3", VNI["acme/db"], broadcast(DB2))
    assert ports(out) == {DB1.ofport}


def test_unicast_from_tunnel_to_a_vm_elsewhere_is_dropped(fabric: Fabric) -> None:
    assert fabric.receive("hv1", "hv2", VNI["acme/web"], to(WEB3, WEB4)) == []


# --- isolation -----------------------------------------------------------------------------

@pytest.mark.parametrize(("asker", "owner"), [(WEB2, WEB1), (GX2, GX1), (WEB2, WEB3),
                                              (GX2, GX3), (WEB1, WEB2), (GX1, GX2)])
def test_same_ip_in_two_tenants_resolves_per_tenant(fabric: Fabric, asker: Endpoint,
                                                    owner: Endpoint) -> None:
    (reply,) = fabric.send(asker, ask(asker, owner.ips[0]))
    assert reply.packet["arp_sha"] == owner.mac


@pytest.mark.parametrize(("src", "dst"), [(WEB1, GX2), (WEB1, GX3), (GX1, WEB3), (WEB1, DB1),
                                          (WEB1, DB2)])
def test_unicast_to_another_network_is_dropped(fabric: Fabric, src: Endpoint,
                                               dst: Endpoint) -> None:
    assert fabric.send(src, to(src, dst)) == []


def test_tunnel_key_selects_the_tenant(fabric: Fabric) -> None:
    acme = fabric.receive("hv1", "hv2", VNI["acme/web"], broadcast(WEB3))
    globex = fabric.receive("hv1", "hv2", VNI["globex/web"], broadcast(GX3))
    assert ports(acme) == {WEB1.ofport, WEB2.ofport}
    assert ports(globex) == {GX1.ofport, GX2.ofport}
    # The same frame with globex's key, addressed to an acme MAC, must not reach acme.
    assert fabric.receive("hv1", "hv2", VNI["globex/web"], to(GX3, WEB1)) == []


@pytest.mark.parametrize(("hv", "vni"), [("hv1", UNKNOWN_VNI), ("hv4", VNI["acme/db"]),
                                         ("hv4", VNI["globex/web"]), ("hv1", 0)])
def test_tunnel_key_of_no_local_network_is_dropped(fabric: Fabric, hv: str, vni: int) -> None:
    assert fabric.receive(hv, "hv2", vni, broadcast(WEB3)) == []


def test_unknown_port_is_dropped(fabric: Fabric) -> None:
    assert fabric.switches["hv1"].process(broadcast(WEB1), in_port=77) == []


@pytest.mark.parametrize("packet", [
    ipv4(WEB2.mac, BROADCAST_MAC, WEB1.ips[0], "198.51.100.63"),     # another VM's MAC
    ipv4("02:66:66:66:66:66", WEB2.mac, WEB1.ips[0], WEB2.ips[0]),   # an unknown MAC
    ipv4(WEB1.mac, WEB2.mac, WEB2.ips[0], WEB2.ips[0]),              # another VM's IP
    ipv4(WEB1.mac, WEB2.mac, "198.51.100.40", WEB2.ips[0]),          # a free IP
    arp_request(WEB1.mac, WEB2.ips[0], WEB3.ips[0]),                 # ARP claiming web2's IP
    arp_request(WEB1.mac, "198.51.100.1", "198.51.100.1"),           # gratuitous for the gw
    {**ask(WEB1, WEB3.ips[0]), "arp_sha": WEB2.mac},                 # ARP with web2's MAC
    ipv6(WEB1.mac, BROADCAST_MAC, "fe80::1", "ff02::1"),             # IPv6 on a v4-only VM
], ids=["eth-src-other-vm", "eth-src-unknown", "ip-other-vm", "ip-free", "arp-spa",
        "garp-gateway", "arp-sha", "ipv6"])
def test_spoofed_sources_are_dropped(fabric: Fabric, packet: Packet) -> None:
    assert fabric.send(WEB1, packet) == []


# --- determinism, identity, locality ---------------------------------------------------------

def test_compiling_twice_gives_the_same_flows_and_cookies() -> None:
    first = compile_switch(POLICY, build_directory(), "hv1")
    again = compile_switch(POLICY, build_directory(reversed(ALL), tuple(reversed(HVS))), "hv1")
    assert first == again
    assert sorted(f.cookie for f in first) == sorted(f.cookie for f in again)


@pytest.mark.parametrize("hv", HVS)
def test_cookies_are_unique_and_ours(hv: str) -> None:
    flows = compile_switch(POLICY, build_directory(), hv)
    assert flows
    assert len({f.cookie for f in flows}) == len(flows)
    assert all(is_ours(f.cookie) for f in flows)


def test_unknown_hypervisor_compiles_to_nothing() -> None:
    assert compile_switch(POLICY, build_directory(), "hv9") == frozenset()


def test_new_endpoint_changes_only_hypervisors_of_its_tenant() -> None:
    before = build_directory()
    newcomer = vm("gx4", "globex/web", "hv3", 2, "198.51.100.13", "02:9e:00:00:00:04")
    after = build_directory([*ALL, newcomer])
    changed = {hv for hv in HVS
               if compile_switch(POLICY, before, hv) != compile_switch(POLICY, after, hv)}
    assert changed == {"hv1", "hv2", "hv3"}  # hv4 hosts acme only


# --- the stage contract --------------------------------------------------------------------

@pytest.mark.parametrize("bad", [
    flow(Stage.IN_CLASSIFY, 1, {"eth_dst": WEB1.mac}, goto=Stage.IN_PORT_SEC),
    flow(Stage.IN_L2_LOOKUP, 1, {"in_port": 1}),
    flow(Stage.IN_L2_LOOKUP, 1, {}, goto=Stage.IN_CLASSIFY),
    flow(Stage.IN_ARP_RESPONDER, 1, {}, goto=Stage.IN_PORT_SEC),
    flow(Stage.IN_CLASSIFY, 1, {}, goto=Stage.IN_ARP_RESPONDER),  # forward, but not declared
], ids=["field-classify", "field-l2", "goto-back", "goto-back-one", "goto-skip"])
def test_check_flow_rejects_what_the_stage_does_not_allow(bad: Flow) -> None:
    with pytest.raises(FlowError):
        check_flow(bad)


@pytest.mark.parametrize("hv", HVS)
def test_every_flow_keeps_the_stage_contract_and_openflow_rules(hv: str) -> None:
    flows = compile_switch(POLICY, build_directory(), hv)
    for f in flows:
        check_flow(f)
    FakeBrInt(flows)  # refuses unmet prerequisites, backwards gotos, conflicting duplicates


# --- IPv6 port security --------------------------------------------------------------------

def test_ipv6_vm_may_use_its_address_link_local_and_unspecified() -> None:
    policy = load_policy([str(ROOT / "policies" / "examples" / "ipv6.yaml")])
    fe1 = Endpoint("initech/frontend", "02:1e:00:00:00:01", ("2001:db8:7001::10",), "hv1",
                   "tap-fe1", 1, "iface-fe1")
    fe2 = dataclasses.replace(fe1, mac="02:1e:00:00:00:02", ips=("2001:db8:7001::11",),
                              port="tap-fe2", ofport=2, iface_id="iface-fe2")
    fabric = Fabric(build_directory([fe1, fe2], hvs=("hv1",)), policy)
    for src in ("2001:db8:7001::10", "fe80::1", "::"):
        assert ports(fabric.send(fe1, ipv6(fe1.mac, fe2.mac, src, "2001:db8:7001::11"))) == {2}
    for src in ("2001:db8:7001::11", "fec0::1", "2001:db8:7002::10"):
        assert fabric.send(fe1, ipv6(fe1.mac, fe2.mac, src, "2001:db8:7001::11")) == []


# --- known gaps: inputs the directory accepts but the compiler turns into conflicts ---------
# InvalidFlow: two flows with one match and priority but different actions; OVS keeps the last
# one added, and as their cookies differ the reconciler would re-add the other for ever.
# AmbiguousMatch: overlapping equal-priority flows; which one OVS picks is undefined.

MOVING_WEB3 = dataclasses.replace(WEB3, hypervisor="hv1", port="tap-web3-new", ofport=9)


def test_vm_mid_move_seen_locally_has_a_defined_fate() -> None:
    switch = FakeBrInt(compile_switch(POLICY, build_directory([*ALL, MOVING_WEB3]), "hv1"))
    assert switch.outputs(to(WEB1, WEB3), in_port=WEB1.ofport) == {MOVING_WEB3.ofport}


def test_vm_mid_move_seen_remotely_compiles_to_one_flow_per_match() -> None:
    FakeBrInt(compile_switch(POLICY, build_directory([*ALL, MOVING_WEB3]), "hv4"))


def test_duplicate_ip_in_a_network_compiles_to_one_arp_answer() -> None:
    twin = vm("twin", "acme/web", "hv4", 2, WEB1.ips[0], "02:ac:00:00:00:99")
    FakeBrInt(compile_switch(POLICY, build_directory([*ALL, twin]), "hv1"))


def test_endpoint_with_the_gateway_address_does_not_hijack_the_gateway() -> None:
    squatter = vm("squat", "acme/web", "hv4", 2, "198.51.100.1", "02:ac:00:00:00:98")
    switch = FakeBrInt(compile_switch(POLICY, build_directory([*ALL, squatter]), "hv1"))
    (reply,) = switch.process(ask(WEB1, "198.51.100.1"), in_port=WEB1.ofport)
    assert reply.packet["arp_sha"] == GATEWAY_MAC


# --- properties over random placements -----------------------------------------------------

NETWORKS = tuple(VNI)
placements = st.lists(st.tuples(st.sampled_from(NETWORKS), st.sampled_from(HVS[:3])),
                      min_size=1, max_size=9)


def place(choices: Sequence[tuple[str, str]]) -> tuple[Endpoint, ...]:
    """Endpoints at the chosen places; addresses repeat across networks, never inside one."""
    endpoints = []
    for i, (network, hv) in enumerate(choices):
        net = POLICY.network(network)
        assert net is not None
        nth = sum(1 for n, _ in choices[:i] if n == network)
        ofport = sum(1 for _, h in choices[:i] if h == hv) + 1
        ip = str(ipaddress.ip_address(net.subnet.network_address) + 10 + nth)
        endpoints.append(vm(f"vm{i}", network, hv, ofport, ip, f"02:00:00:00:00:{i + 1:02x}"))
    return tuple(endpoints)


def expected_unicast(src: Endpoint, dst: Endpoint) -> dict[int, int]:
    """Port -> tunnel key that a frame from src to dst's MAC should leave by."""
    if dst.network != src.network or dst == src:
        return {}
    if dst.hypervisor == src.hypervisor:
        return {dst.ofport: 0}
    return {tunnel(dst.hypervisor): VNI[src.network]}


def expected_flood(src: Endpoint, endpoints: Sequence[Endpoint]) -> dict[int, int]:
    peers = [e for e in endpoints if e.network == src.network and e != src]
    local = {e.ofport: 0 for e in peers if e.hypervisor == src.hypervisor}
    remote = {tunnel(e.hypervisor): VNI[src.network] for e in peers
              if e.hypervisor != src.hypervisor}
    return {**local, **remote}


def fate(deliveries: Iterable[Delivery]) -> dict[int, int]:
    return {d.port: d.tunnel_id for d in deliveries}


@settings(max_examples=60, deadline=None)
@given(placements)
def test_vm_traffic_goes_exactly_where_the_directory_says(
        choices: list[tuple[str, str]]) -> None:
    endpoints = place(choices)
    fabric = Fabric(build_directory(endpoints, HVS[:3]))
    for src in endpoints:
        assert fate(fabric.send(src, broadcast(src))) == expected_flood(src, endpoints)
        for dst in endpoints:
            assert fate(fabric.send(src, to(src, dst))) == expected_unicast(src, dst)
            if dst.network == src.network and dst != src:
                (reply,) = fabric.send(src, ask(src, dst.ips[0]))
                assert (reply.port, reply.packet["arp_sha"]) == (src.ofport, dst.mac)


@settings(max_examples=60, deadline=None)
@given(placements)
def test_tunnel_traffic_reaches_only_local_ports_of_its_network(
        choices: list[tuple[str, str]]) -> None:
    endpoints = place(choices)
    fabric = Fabric(build_directory(endpoints, HVS[:3]))
    for hv in HVS[:3]:
        remote = next(r for r in HVS[:3] if r != hv)
        for network, vni in VNI.items():
            local = {e.ofport for e in endpoints if e.hypervisor == hv and e.network == network}
            frame = ipv4("02:ff:00:00:00:01", BROADCAST_MAC, "198.51.100.62", "198.51.100.63")
            assert ports(fabric.receive(hv, remote, vni, frame)) == local


# --- shared parts and the incremental compiler ---------------------------------------------

def test_a_remote_endpoint_has_the_same_flow_on_every_hypervisor() -> None:
    directory = build_directory()
    cookies = {hv: {f.cookie for f in compile_switch(POLICY, directory, hv)
                    if dict(f.match).get("eth_dst") == WEB3.mac}
               for hv in ("hv1", "hv4")}
    assert cookies["hv1"] == cookies["hv4"] and len(cookies["hv1"]) == 1


def test_no_tunnel_to_a_hypervisor_drops_its_unicast() -> None:
    directory = build_directory()
    directory.put_hypervisor(dataclasses.replace(hypervisor("hv1"), tunnels=MappingProxyType(
        {"hv3": tunnel("hv3"), "hv4": tunnel("hv4")})))  # the tunnel to hv2 is not there yet
    switch = FakeBrInt(compile_switch(POLICY, directory, "hv1"))
    assert switch.process(to(WEB1, WEB3), in_port=WEB1.ofport) == []
    assert fate(switch.process(to(WEB1, WEB4), in_port=WEB1.ofport)) == {tunnel("hv4"): 5001}


def test_a_part_amended_from_members_that_came_and_went_equals_a_fresh_build() -> None:
    """Including members a fresh build would treat specially: one claiming the gateway's
    address, one sharing a MAC (bindings refuse both, a directory in flux may hold them)."""
    net = POLICY.network("acme/web")
    assert net is not None
    keys = (("hv1", 1), ("hv2", 2))
    odd = vm("odd", "acme/web", "hv2", 7, str(net.gateway), "02:ac:00:00:00:77")
    twin = vm("twin", "acme/web", "hv2", 8, "198.51.100.99", WEB1.mac)
    fresh = vm("fresh", "acme/web", "hv2", 9, "198.51.100.98", "02:ac:00:00:00:98")
    steps = [(WEB1,), (WEB1, WEB2), (WEB1, WEB2, odd), (WEB1, WEB2), (WEB1, WEB2, twin),
             (WEB2, twin), (WEB2, fresh), (fresh,), ()]
    part = flowparts.build_part(net, (), keys)
    for members in steps:
        part = part.successor(members, keys)
        expected = flowparts.build_part(net, members, keys)
        assert part.shared == expected.shared, members
        assert (part.remote_unicast, part.local, part.addressless, part.claims) == (
            expected.remote_unicast, expected.local, expected.addressless, expected.claims)


changes = st.lists(st.tuples(st.sampled_from(("put", "drop", "tunnels")),
                             st.sampled_from(ALL), st.sampled_from(HVS)), max_size=12)


@settings(max_examples=60, deadline=None)
@given(changes)
def test_incremental_compiler_agrees_with_a_fresh_compile(
        steps: list[tuple[str, Endpoint, str]]) -> None:
    """One long-lived Compiler reuses parts across changes; it must never serve stale ones."""
    directory = build_directory()
    compiler = Compiler()
    mirrors: dict[str, dict[int, Flow]] = {}
    for op, ep, hv in steps:
        on_hv = list(directory.endpoints_on(hv))
        if op == "put":
            moved = dataclasses.replace(ep, hypervisor=hv, port=f"{ep.port}-{hv}")
            directory.replace_endpoints(hv, [*on_hv, moved])
        elif op == "drop" and on_hv:
            directory.replace_endpoints(hv, on_hv[1:])
        elif op == "tunnels":  # the tunnel ports were re-created: new ofports
            old = directory.hypervisor(hv)
            assert old is not None
            directory.put_hypervisor(dataclasses.replace(old, tunnels=MappingProxyType(
                {r: p + 50 for r, p in old.tunnels.items()})))
        work = {name: None for name in HVS}  # whole switches; the engine's tests cover parts
        for name, switch, changed in compiler.switches(POLICY, directory, work):
            expected = compile_switch(POLICY, directory, name)
            assert set(switch.flows.values()) == expected
            # What the reconciler sees: only the changed cookies, applied to its copy.
            mirror = mirrors.setdefault(name, {})
            for cookie in changed:
                if cookie in switch.flows:
                    mirror[cookie] = switch.flows[cookie]
                else:
                    del mirror[cookie]
            assert set(mirror.values()) == expected


def test_cookies_do_not_change_between_versions() -> None:
    """A cookie is a flow's identity on the switches: if the same flow hashed differently
    after an upgrade, a restarted controller would replace every flow it finds."""
    f = flow(Stage.IN_ARP_RESPONDER, 100, {"reg0": 5001, "eth_type": 0x0806, "arp_op": 1,
                                           "arp_tpa": "198.51.100.10"},
             [Move("eth_src", "eth_dst", 48), SetField("eth_src", "02:00:00:00:00:01"),
              Output(0xFFFFFFF8)])
    assert f.cookie == 0xD00320341529B2BD
    assert repr(f.actions) == ("(Move(src='eth_src', dst='eth_dst', n_bits=48), "
                               "SetField(field='eth_src', value='02:00:00:00:00:01'), "
                               "Output(port=4294967288))")
