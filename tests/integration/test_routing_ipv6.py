"""IPv6 on real OVS (issue 12): neighbour solicitations answered inside OVS, IPv6 networks
routed by the tenant's rules, statefully, as IPv4 ones are.

policies/examples/ipv6.yaml: frontend may open TCP 8000-8080 (and UDP 53) to backend;
backend may ping frontend; ops may open anything to backend and frontend.
"""

from __future__ import annotations

from pathlib import Path

from dove_lab.probe import neighbour_mac, ping
from ryu_dove.pipeline.parts.common import GATEWAY_MAC
from tests.integration.helpers import (
    installed,
    tcp_name_server,
    tcp_read,
    wait_for,
    wait_in_sync,
)

ROOT = Path(__file__).resolve().parents[2]
IPV6_POLICY = ROOT / "policies" / "examples" / "ipv6.yaml"
TOPOLOGY = """
hypervisors: [hv1, hv2, hv3]
vms:
  - {name: fe1, hypervisor: hv1, network: initech/frontend, ip: "2001:db8:7001::10"}
  - {name: fe2, hypervisor: hv2, network: initech/frontend, ip: "2001:db8:7001::11"}
  - {name: be1, hypervisor: hv2, network: initech/backend, ip: "2001:db8:7002::10"}
  - {name: be2, hypervisor: hv1, network: initech/backend, ip: "2001:db8:7002::11"}
  - {name: ops1, hypervisor: hv3, network: initech/ops, ip: "2001:db8:7003::10"}
"""
FRONTEND_GATEWAY = "2001:db8:7001::1"


def _nd_answers(lab, hv: str) -> int:
    """Advertisements OVS built on hv (packets through IN_ND_REPLY's one answering flow)."""
    for _, line in installed(lab, hv).values():
        if "table=21" in line and "icmp_type=136" in line:
            return int(line.split("n_packets=")[1].split(",")[0])
    raise AssertionError(f"no IN_ND_REPLY flow on {hv}")


def test_ipv6_neighbours_are_answered_in_ovs_and_networks_route_by_the_rules(
        make_lab, write_topology):
    lab = make_lab(write_topology(TOPOLOGY), controller=True,
                   policy_paths=[str(IPV6_POLICY)])
    wait_in_sync(lab)
    vms = lab.state().vms
    fe1, fe2, be1, be2, ops1 = (vms[n] for n in ("fe1", "fe2", "be1", "be2", "ops1"))

    # One network across hypervisors; the answers come from OVS (nobody else knows the
    # gateway's MAC), with a valid checksum (Linux drops bad advertisements).
    assert ping(fe1, fe2.ip, timeout=5.0)
    assert neighbour_mac(fe1, fe2.ip) == fe2.mac
    assert _nd_answers(lab, "hv1") >= 1

    # Routed ICMPv6 by backend -> frontend: across hypervisors and on one.
    for src in (be1, be2):
        wait_for(lambda src=src: ping(src, fe1.ip, timeout=1.0), 10, f"{src.name} -> fe1")
    assert neighbour_mac(be1, "2001:db8:7002::fffe") == GATEWAY_MAC
    assert ping(ops1, be1.ip, timeout=3.0)  # ops -> backend: proto any

    servers = [tcp_name_server(be1.netns, "be1", port, host="::") for port in (8080, 8081)]
    servers.append(tcp_name_server(fe1.netns, "fe1", 8000, host="::"))
    try:
        assert tcp_read(fe1.netns, be1.ip, 8080) == "be1"  # inside the range, across hvs
        assert tcp_read(fe2.netns, be1.ip, 8080) == "be1"  # the same, on one hypervisor
        assert neighbour_mac(fe1, FRONTEND_GATEWAY) == GATEWAY_MAC  # resolved by OVS
        refused = {
            "port outside the range": tcp_read(fe1.netns, be1.ip, 8081, 2.0),
            "reverse of a one-way rule": tcp_read(be1.netns, fe1.ip, 8000, 2.0),
            "icmp frontend -> backend": "ok" if ping(fe1, be1.ip, timeout=1.0) else "",
            "an address nobody holds": "ok" if ping(fe1, "2001:db8:7002::99",
                                                    timeout=1.0) else "",
        }
        assert refused == dict.fromkeys(refused, ""), refused
    finally:
        for server in servers:
            server.kill()
            server.wait()
