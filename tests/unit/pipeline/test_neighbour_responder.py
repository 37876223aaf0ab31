"""in_arp_responder's IPv6 twin: neighbour solicitations answered inside OVS, the rest kept
off the underlay (policies/examples/ipv6.yaml; fe1, fe2 on hv1, fe3 on hv2, be1 on hv2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ryu_dove.directory import Endpoint
from ryu_dove.pipeline.compiler import GATEWAY_MAC, compile_switch
from ryu_dove.policy import load_policy
from tests.fakes.br_int import ZERO_MAC, neighbour_solicitation
from tests.unit.pipeline.topology import POLICY as V4_POLICY
from tests.unit.pipeline.topology import Fabric, build_directory, keyed, ports, tunnel

ROOT = Path(__file__).resolve().parents[3]
POLICY = load_policy([str(ROOT / "policies" / "examples" / "ipv6.yaml")])


def endpoint(name: str, network: str, hv: str, ofport: int, ip: str, mac: str) -> Endpoint:
    return Endpoint(f"initech/{network}", mac, (ip,) if ip else (), hv, f"tap-{name}", ofport,
                    f"iface-{name}")


FE1 = endpoint("fe1", "frontend", "hv1", 1, "2001:db8:7001::10", "02:1e:00:00:00:01")
FE2 = endpoint("fe2", "frontend", "hv1", 2, "2001:db8:7001::11", "02:1e:00:00:00:02")
FE3 = endpoint("fe3", "frontend", "hv2", 1, "2001:db8:7001::12", "02:1e:00:00:00:03")
BE1 = endpoint("be1", "backend", "hv2", 2, "2001:db8:7002::10", "02:1e:00:00:00:04")
ND_FLAGS_ROUTER, ND_FLAGS_HOST = 0xE0000000, 0x60000000  # R|S|O and S|O


@pytest.fixture
def fabric() -> Fabric:
    return Fabric(build_directory([FE1, FE2, FE3, BE1], hvs=("hv1", "hv2")), POLICY)


@pytest.mark.parametrize(("target", "mac", "flags"), [
    (FE2, FE2.mac, ND_FLAGS_HOST), (FE3, FE3.mac, ND_FLAGS_HOST)], ids=["local", "remote"])
def test_a_solicitation_for_a_known_endpoint_is_advertised_back(fabric: Fabric, target,
                                                                mac: str, flags: int) -> None:
    (reply,) = fabric.send(FE1, neighbour_solicitation(FE1.mac, FE1.ips[0], target.ips[0]))
    assert (reply.port, reply.tunnel_id) == (FE1.ofport, 0)
    assert {k: reply.packet[k] for k in (
        "eth_src", "eth_dst", "ipv6_src", "ipv6_dst", "icmpv6_type", "icmpv6_code",
        "ipv6_nd_target", "ipv6_nd_tll", "ipv6_nd_sll", "nd_options_type", "nd_reserved",
        "nw_ttl")} == {
        "eth_src": mac, "eth_dst": FE1.mac, "ipv6_src": target.ips[0],
        "ipv6_dst": FE1.ips[0], "icmpv6_type": 136, "icmpv6_code": 0,
        "ipv6_nd_target": target.ips[0], "ipv6_nd_tll": mac, "ipv6_nd_sll": ZERO_MAC,
        "nd_options_type": 2, "nd_reserved": flags, "nw_ttl": 255}


@pytest.mark.parametrize(("asker", "gateway"), [(FE1, "2001:db8:7001::1"),
                                                (BE1, "2001:db8:7002::fffe")])
def test_the_gateway_is_advertised_as_a_router_with_the_gateway_mac(
        fabric: Fabric, asker: Endpoint, gateway: str) -> None:
    (reply,) = fabric.send(asker, neighbour_solicitation(asker.mac, "fe80::1", gateway))
    assert reply.port == asker.ofport
    assert (reply.packet["eth_src"], reply.packet["ipv6_nd_tll"]) == (GATEWAY_MAC, GATEWAY_MAC)
    assert (reply.packet["ipv6_src"], reply.packet["ipv6_dst"]) == (gateway, "fe80::1")
    assert reply.packet["nd_reserved"] == ND_FLAGS_ROUTER


def test_another_networks_endpoint_is_not_advertised(fabric: Fabric) -> None:
    out = fabric.send(FE1, neighbour_solicitation(FE1.mac, FE1.ips[0], BE1.ips[0]))
    assert ports(out) == {FE2.ofport}  # a miss: local ports of the network only
    assert all(d.packet["icmpv6_type"] == 135 for d in out)


def test_an_unknown_target_stays_off_the_underlay(fabric: Fabric) -> None:
    out = fabric.send(FE1, neighbour_solicitation(FE1.mac, FE1.ips[0], "2001:db8:7001::99"))
    assert ports(out) == {FE2.ofport} and keyed(out) == {}


def test_an_unknown_target_reaches_hypervisors_of_vms_bound_without_addresses() -> None:
    bare = endpoint("bare", "frontend", "hv2", 3, "", "02:1e:00:00:00:77")
    fabric = Fabric(build_directory([FE1, FE2, FE3, bare], hvs=("hv1", "hv2")), POLICY)
    ns = neighbour_solicitation(FE1.mac, FE1.ips[0], "2001:db8:7001::99")
    out = fabric.send(FE1, ns)
    assert ports(out) == {FE2.ofport, tunnel("hv2")} and keyed(out) == {tunnel("hv2"): 7001}
    assert ports(fabric.receive("hv2", "hv1", 7001, ns)) == {FE3.ofport, bare.ofport}


@pytest.mark.parametrize("target", [FE1, FE2], ids=["own-address", "taken-address"])
def test_duplicate_address_detection_is_never_answered(fabric: Fabric, target) -> None:
    """From ::, without a MAC: OVS must not tell a VM its own address is taken."""
    out = fabric.send(FE1, neighbour_solicitation(FE1.mac, "::", target.ips[0]))
    assert ports(out) <= {FE2.ofport} and keyed(out) == {}
    assert all(d.packet["icmpv6_type"] == 135 for d in out)


def test_a_link_local_target_is_resolved_as_on_a_lan(fabric: Fabric) -> None:
    """Link-local addresses are not in the directory: the solicitation floods the network."""
    out = fabric.send(FE1, neighbour_solicitation(FE1.mac, "fe80::1", "fe80::2"))
    assert ports(out) == {FE2.ofport, tunnel("hv2")}
    assert all(d.packet["icmpv6_type"] == 135 for d in out)


def test_ipv4_networks_carry_no_neighbour_discovery_flows() -> None:
    flows = compile_switch(V4_POLICY, build_directory(), "hv1")
    assert not [f for f in flows if dict(f.match).get("icmpv6_type") == 135
                and "reg0" in dict(f.match)]
