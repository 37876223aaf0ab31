"""in_l2_lookup (and out_tunnel): where unicast and broadcast frames go, from VM ports
and from tunnels. Topology: tests/unit/pipeline/topology.py."""

from __future__ import annotations

from tests.fakes.br_int import Delivery
from tests.unit.pipeline.topology import (
    DB1,
    DB2,
    GX1,
    GX2,
    VNI,
    WEB1,
    WEB2,
    WEB3,
    WEB4,
    Fabric,
    broadcast,
    keyed,
    ports,
    to,
    tunnel,
)

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
