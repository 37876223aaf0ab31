"""in_port_sec: a VM may only send from its own MAC and bound addresses (ARP, IPv4,
IPv6). Topology: tests/unit/pipeline/topology.py."""

from __future__ import annotations

import dataclasses

import pytest

from ryu_dove.directory import Endpoint
from ryu_dove.policy import load_policy
from tests.fakes.br_int import BROADCAST_MAC, Packet, arp_request, ipv4, ipv6
from tests.unit.pipeline.topology import (
    ROOT,
    WEB1,
    WEB2,
    WEB3,
    Fabric,
    ask,
    build_directory,
    ports,
)

# --- spoofed sources -----------------------------------------------------------------------

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
