"""Properties over random placements: every packet goes exactly where the directory
says, whatever hypervisors the VMs land on."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from ryu_dove.directory import Endpoint
from tests.fakes.br_int import BROADCAST_MAC, ipv4
from tests.unit.pipeline.topology import (
    HVS,
    POLICY,
    VNI,
    Fabric,
    ask,
    broadcast,
    build_directory,
    fate,
    ports,
    to,
    tunnel,
    vm,
)

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
            hosts = {e.hypervisor for e in endpoints if e.network == network}
            frame = ipv4("02:ff:00:00:00:01", BROADCAST_MAC, "198.51.100.62", "198.51.100.63")
            # Only from a peer that hosts the network too: tunnel ingress is bound to peers.
            expected = local if remote in hosts else set()
            assert ports(fabric.receive(hv, remote, vni, frame)) == expected
