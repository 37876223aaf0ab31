"""in_arp_responder: ARP requests answered inside OVS, the rest kept off the underlay.
Topology: tests/unit/pipeline/topology.py."""

from __future__ import annotations

import pytest

from ryu_dove.directory import Endpoint
from ryu_dove.pipeline.compiler import GATEWAY_MAC
from tests.fakes.br_int import ARP_REPLY, arp_request
from tests.unit.pipeline.topology import (
    ALL,
    DB1,
    GX1,
    WEB1,
    WEB2,
    WEB3,
    WEB4,
    Fabric,
    ask,
    build_directory,
    keyed,
    ports,
    tunnel,
)

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
