"""in_classify: the VM port or tunnel key picks the network; tenants stay apart, unknown
ports and keys are dropped. Topology: tests/unit/pipeline/topology.py."""

from __future__ import annotations

import pytest

from ryu_dove.directory import Endpoint
from tests.unit.pipeline.topology import (
    DB1,
    DB2,
    GX1,
    GX2,
    GX3,
    UNKNOWN_VNI,
    VNI,
    WEB1,
    WEB2,
    WEB3,
    Fabric,
    ask,
    broadcast,
    ports,
    to,
)

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


def test_tunnel_ingress_is_bound_to_the_peers_hosting_the_network(fabric: Fabric) -> None:
    # acme/db is on hv1 and hv3 only: its VNI from hv2's tunnel is someone else's traffic
    # (a spoofed source TEP, or a peer that has no business in that network).
    frame = broadcast(DB2)
    assert ports(fabric.receive("hv1", "hv3", VNI["acme/db"], frame)) == {DB1.ofport}
    assert fabric.receive("hv1", "hv2", VNI["acme/db"], frame) == []
    assert fabric.receive("hv1", "hv2", VNI["acme/db"], to(DB2, DB1)) == []


def test_unknown_port_is_dropped(fabric: Fabric) -> None:
    assert fabric.switches["hv1"].process(broadcast(WEB1), in_port=77) == []
