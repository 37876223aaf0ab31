"""compile_switch: the whole desired flow set of one hypervisor's br-int, as pure data.

Inputs are the policy, the directory and the hypervisor's name; no I/O, no clock. The
reconciler (ryu_dove.reconciler) turns the difference to what the switch has into messages.
Stages and registers: ryu_dove.pipeline and docs/pipeline.md.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence

from ryu_dove.directory import Directory, Endpoint, Hypervisor
from ryu_dove.flows import (
    IN_PORT,
    Action,
    Flow,
    MatchValue,
    Move,
    Output,
    SetField,
    check_flow,
    flow,
)
from ryu_dove.pipeline import REG_FROM_TUNNEL, REG_NETWORK, Stage
from ryu_dove.policy import Network, Policy

GATEWAY_MAC = "02:d0:ee:00:00:01"  # answers ARP for every network's gateway address
ETH_ARP, ETH_IPV4, ETH_IPV6 = 0x0806, 0x0800, 0x86DD
MULTICAST = ("01:00:00:00:00:00", "01:00:00:00:00:00")
IPV6_LINK_LOCAL = ("fe80::", "ffc0::")
IPV6_UNSPECIFIED = "::"

# Priorities inside a stage: specific before general; 0 is each stage's default.
P_DEFAULT, P_NORMAL, P_SPECIFIC = 0, 100, 110


def compile_switch(policy: Policy, directory: Directory, hypervisor: str) -> frozenset[Flow]:
    hv = directory.hypervisor(hypervisor)
    if hv is None:
        return frozenset()
    flows = frozenset(_all_flows(policy, directory, hv))
    for f in flows:
        check_flow(f)
    return flows


def _all_flows(policy: Policy, directory: Directory, hv: Hypervisor) -> Iterator[Flow]:
    yield from _defaults()
    local = [e for e in directory.endpoints() if e.hypervisor == hv.name]
    for ep in local:
        net = policy.network(ep.network)
        if net is not None:
            yield from _classify_vm(ep, net)
            yield from _port_security(ep)
    for key in sorted(directory.networks_on(hv.name)):
        net = policy.network(key)
        if net is not None:
            yield from _network_flows(net, directory, hv)


def _defaults() -> Iterator[Flow]:
    yield flow(Stage.IN_CLASSIFY, P_DEFAULT)  # unknown port, MAC or VNI: drop
    yield flow(Stage.IN_PORT_SEC, P_DEFAULT)  # spoofed source: drop
    yield flow(Stage.IN_ARP_RESPONDER, P_DEFAULT, goto=Stage.IN_L2_LOOKUP)
    yield flow(Stage.IN_L2_LOOKUP, P_DEFAULT)  # unknown destination: drop


def _classify_vm(ep: Endpoint, net: Network) -> Iterator[Flow]:
    yield flow(Stage.IN_CLASSIFY, P_NORMAL, {"in_port": ep.ofport, "eth_src": ep.mac},
               [SetField(REG_NETWORK, net.vni)], goto=Stage.IN_PORT_SEC)


def _port_security(ep: Endpoint) -> Iterator[Flow]:
    """A VM may only use its own addresses; with none bound, only its MAC is enforced."""
    nxt = Stage.IN_ARP_RESPONDER
    if not ep.ips:
        yield flow(Stage.IN_PORT_SEC, P_NORMAL, {"in_port": ep.ofport}, goto=nxt)
        return
    for ip in ep.ips:
        if ipaddress.ip_address(ip).version == 4:
            yield flow(Stage.IN_PORT_SEC, P_NORMAL, {"in_port": ep.ofport, "eth_type": ETH_ARP,
                                                     "arp_spa": ip, "arp_sha": ep.mac}, goto=nxt)
            # Duplicate address detection: a probe for its own address must not be answered
            # (with its own MAC) by the responder; it goes to the network as it is.
            yield flow(Stage.IN_PORT_SEC, P_SPECIFIC, {
                "in_port": ep.ofport, "eth_type": ETH_ARP, "arp_spa": "0.0.0.0",
                "arp_tpa": ip, "arp_sha": ep.mac}, goto=Stage.IN_L2_LOOKUP)
            yield flow(Stage.IN_PORT_SEC, P_NORMAL, {"in_port": ep.ofport, "eth_type": ETH_IPV4,
                                                     "ipv4_src": ip}, goto=nxt)
        else:
            yield flow(Stage.IN_PORT_SEC, P_NORMAL, {"in_port": ep.ofport, "eth_type": ETH_IPV6,
                                                     "ipv6_src": ip}, goto=nxt)
    if any(ipaddress.ip_address(ip).version == 4 for ip in ep.ips):
        # A probe for another address is answered if that address is known: a conflict.
        yield flow(Stage.IN_PORT_SEC, P_NORMAL, {"in_port": ep.ofport, "eth_type": ETH_ARP,
                                                 "arp_spa": "0.0.0.0", "arp_sha": ep.mac},
                   goto=nxt)
    if any(ipaddress.ip_address(ip).version == 6 for ip in ep.ips):
        # Link-local addresses and duplicate address detection (from ::) are part of IPv6.
        for src in (IPV6_LINK_LOCAL, IPV6_UNSPECIFIED):
            yield flow(Stage.IN_PORT_SEC, P_NORMAL, {"in_port": ep.ofport, "eth_type": ETH_IPV6,
                                                     "ipv6_src": src}, goto=nxt)


def _network_flows(net: Network, directory: Directory, hv: Hypervisor) -> Iterator[Flow]:
    # Local endpoints first: if the directory ever holds one MAC or address twice (bindings
    # refuse that, but a replicated directory may briefly disagree), the first one wins:
    # the gateway over any VM, a local port over a tunnel, then (hypervisor, port) order.
    members = sorted(directory.endpoints(net.key),
                     key=lambda e: (e.hypervisor != hv.name, e.hypervisor, e.port))
    yield flow(Stage.IN_CLASSIFY, P_NORMAL, {"tunnel_id": net.vni},
               [SetField(REG_NETWORK, net.vni), SetField(REG_FROM_TUNNEL, 1)],
               goto=Stage.IN_L2_LOOKUP)
    answered = {str(net.gateway)}
    if net.gateway.version == 4:
        yield from _arp_reply(net.vni, str(net.gateway), GATEWAY_MAC)
    macs: set[str] = set()
    for ep in members:
        for ip in ep.ips:
            if ipaddress.ip_address(ip).version == 4 and ip not in answered:
                answered.add(ip)
                yield from _arp_reply(net.vni, ip, ep.mac)
        if ep.mac not in macs:
            macs.add(ep.mac)
            yield from _unicast(net, ep, hv)
    yield from _flood(net, members, hv)


def _arp_reply(vni: int, ip: str, mac: str) -> Iterator[Flow]:
    """Answer 'who has ip' in OVS: turn the request into the reply and send it back."""
    match: dict[str, MatchValue] = {REG_NETWORK: vni, "eth_type": ETH_ARP, "arp_op": 1,
                                     "arp_tpa": ip}
    # A gratuitous ARP (sender asks for its own address) announces, it does not ask: pass it.
    yield flow(Stage.IN_ARP_RESPONDER, P_SPECIFIC, {**match, "arp_spa": ip},
               goto=Stage.IN_L2_LOOKUP)
    yield flow(Stage.IN_ARP_RESPONDER, P_NORMAL, match, [
        Move("eth_src", "eth_dst", 48), SetField("eth_src", mac), SetField("arp_op", 2),
        Move("arp_sha", "arp_tha", 48), SetField("arp_sha", mac),
        Move("arp_spa", "arp_tpa", 32), SetField("arp_spa", ip), Output(IN_PORT)])


def _unicast(net: Network, ep: Endpoint, hv: Hypervisor) -> Iterator[Flow]:
    if ep.hypervisor == hv.name:
        yield flow(Stage.IN_L2_LOOKUP, P_NORMAL, {REG_NETWORK: net.vni, "eth_dst": ep.mac},
                   [Output(ep.ofport)])
        return
    tunnel = hv.tunnels.get(ep.hypervisor)
    if tunnel is None:
        return  # no tunnel to that hypervisor yet: its traffic is dropped until there is
    # Only traffic from local VMs goes out to a tunnel: no hairpin between hypervisors.
    yield flow(Stage.IN_L2_LOOKUP, P_NORMAL,
               {REG_NETWORK: net.vni, REG_FROM_TUNNEL: 0, "eth_dst": ep.mac},
               [SetField("tunnel_id", net.vni), Output(tunnel)])


def _flood(net: Network, members: Sequence[Endpoint], hv: Hypervisor) -> Iterator[Flow]:
    """Broadcast and multicast: local ports, plus each hypervisor hosting the network once."""
    local: list[Action] = [Output(e.ofport) for e in members if e.hypervisor == hv.name]
    remotes = sorted({e.hypervisor for e in members if e.hypervisor != hv.name})
    tunnels = [Output(hv.tunnels[r]) for r in remotes if r in hv.tunnels]
    match: dict[str, MatchValue] = {REG_NETWORK: net.vni, "eth_dst": MULTICAST}
    to_remote: list[Action] = [SetField("tunnel_id", net.vni), *tunnels] if tunnels else []
    yield flow(Stage.IN_L2_LOOKUP, P_NORMAL, {**match, REG_FROM_TUNNEL: 0}, [*local, *to_remote])
    yield flow(Stage.IN_L2_LOOKUP, P_NORMAL, {**match, REG_FROM_TUNNEL: 1}, local)
