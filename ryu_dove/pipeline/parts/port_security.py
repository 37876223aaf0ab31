"""IN_PORT_SEC: a VM may only use its own addresses (ARP and IPv4/IPv6 sources).

A learning port (bound without dove-ips) is held to its MAC only, as an address-less port
always was, and the packets that may teach the controller an address go on as they would
and are also copied to it (metered: docs/learning.md): ARP and IP from a source inside the
network's subnet that the port has not been seen to use, and IPv6 duplicate address
detection and advertisements. A learned address gets the flows of a declared one, the
source flow with an idle timeout: the switch says when it went unused that long.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from ryu_dove.directory import Endpoint
from ryu_dove.pipeline.flows import Controller, Flow, FlowMap, MatchValue, flow
from ryu_dove.pipeline.parts.classify import classify_vm
from ryu_dove.pipeline.parts.common import (
    ETH_ARP,
    ETH_IPV4,
    ETH_IPV6,
    IPPROTO_ICMPV6,
    IPV6_LINK_LOCAL,
    IPV6_UNSPECIFIED,
    MEMO,
    ND_ADVERT,
    ND_SOLICIT,
    P_LEARN,
    P_LEARN_PASS,
    P_NORMAL,
    P_SPECIFIC,
    PUNT_BYTES,
    PUNT_METER,
    checked,
)
from ryu_dove.pipeline.stages import Stage

PUNT = Controller(max_len=PUNT_BYTES, meter_id=PUNT_METER)


@dataclass(frozen=True)
class LearnScope:
    """What a learning port's flows need of its network."""

    subnet: str  # "192.0.2.0/24"
    gateway: str


@lru_cache(maxsize=MEMO)
def endpoint_flows(ep: Endpoint, vni: int, scope: LearnScope | None = None) -> FlowMap:
    """A local endpoint's own part: its classification and its port security (a learning
    endpoint's needs its network's `scope`)."""
    if ep.learning and scope is not None:
        return checked([classify_vm(ep, vni), *learning_port(ep, scope)])
    return checked([classify_vm(ep, vni), *port_security(ep)])


def learning_port(ep: Endpoint, scope: LearnScope) -> Iterator[Flow]:
    """A learning port: its learned addresses as declared ones, the gateway's address
    refused as a source, and the rest passed (copied to the controller while it learns)."""
    port, nxt = ep.ofport, Stage.IN_ARP_RESPONDER
    sources = {f.match: f for f in (learned_source(ep, ip) for ip in ep.ips)}
    for f in port_security(ep) if ep.ips else ():  # (with none, it passes every source)
        yield sources.get(f.match, f)  # a learned source's flow counts the VM's use of it
    net = ipaddress.ip_network(scope.subnet)
    if net.version == 4:
        yield flow(Stage.IN_PORT_SEC, P_SPECIFIC, {"in_port": port, "eth_type": ETH_ARP,
                                                   "arp_spa": scope.gateway})
        yield flow(Stage.IN_PORT_SEC, P_SPECIFIC, {"in_port": port, "eth_type": ETH_IPV4,
                                                   "ipv4_src": scope.gateway})
    else:
        yield flow(Stage.IN_PORT_SEC, P_SPECIFIC, {"in_port": port, "eth_type": ETH_IPV6,
                                                   "ipv6_src": scope.gateway})
    if ep.punt:
        yield from _punts(port, net)
    yield flow(Stage.IN_PORT_SEC, P_LEARN_PASS, {"in_port": port}, goto=nxt)


def learned_source(ep: Endpoint, ip: str) -> Flow:
    """The flow that passes a learned address as a source: the switch removes it when it
    went unused for the port's idle time, and says so (the address is then retired)."""
    v4 = ipaddress.ip_address(ip).version == 4
    match: dict[str, MatchValue] = {"in_port": ep.ofport,
                                    "eth_type": ETH_IPV4 if v4 else ETH_IPV6,
                                    "ipv4_src" if v4 else "ipv6_src": ip}
    return flow(Stage.IN_PORT_SEC, P_NORMAL, match, goto=Stage.IN_ARP_RESPONDER,
                idle_timeout=ep.learn_idle_s)


def _punts(port: int, net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> Iterator[Flow]:
    """Copies to the controller of what may teach it an address; the packet goes on."""
    nxt, inside = Stage.IN_ARP_RESPONDER, (str(net.network_address), str(net.netmask))
    if net.version == 4:
        yield flow(Stage.IN_PORT_SEC, P_LEARN, {"in_port": port, "eth_type": ETH_ARP,
                                                "arp_spa": inside}, [PUNT], nxt)
        yield flow(Stage.IN_PORT_SEC, P_LEARN, {"in_port": port, "eth_type": ETH_IPV4,
                                                "ipv4_src": inside}, [PUNT], nxt)
        return
    yield flow(Stage.IN_PORT_SEC, P_LEARN, {"in_port": port, "eth_type": ETH_IPV6,
                                            "ipv6_src": inside}, [PUNT], nxt)
    # Duplicate address detection (from ::) names the address the VM is about to take; an
    # advertisement from its link-local address names one it holds.
    yield flow(Stage.IN_PORT_SEC, P_NORMAL + 1, {  # over the pass of :: once it has one
        "in_port": port, "eth_type": ETH_IPV6, "ipv6_src": IPV6_UNSPECIFIED,
        "ip_proto": IPPROTO_ICMPV6, "icmpv6_type": ND_SOLICIT}, [PUNT], nxt)
    yield flow(Stage.IN_PORT_SEC, P_LEARN - 1, {
        "in_port": port, "eth_type": ETH_IPV6, "ip_proto": IPPROTO_ICMPV6,
        "icmpv6_type": ND_ADVERT},
        [PUNT], nxt)


def port_security(ep: Endpoint) -> Iterator[Flow]:
    """A VM may only use its own addresses; with none bound, only its MAC is enforced."""
    nxt = Stage.IN_ARP_RESPONDER
    if not ep.ips:
        yield flow(Stage.IN_PORT_SEC, P_NORMAL, {"in_port": ep.ofport}, goto=nxt)
        return
    versions = {ipaddress.ip_address(ip).version for ip in ep.ips}
    for ip in ep.ips:
        if ipaddress.ip_address(ip).version == 4:
            yield from _ipv4_sources(ep, ip)
        else:
            yield flow(Stage.IN_PORT_SEC, P_NORMAL, {"in_port": ep.ofport, "eth_type": ETH_IPV6,
                                                     "ipv6_src": ip}, goto=nxt)
    if 4 in versions:
        # A probe for another address is answered if that address is known: a conflict.
        yield flow(Stage.IN_PORT_SEC, P_NORMAL, {"in_port": ep.ofport, "eth_type": ETH_ARP,
                                                 "arp_spa": "0.0.0.0", "arp_sha": ep.mac},
                   goto=nxt)
    if 6 in versions:
        # Link-local addresses and duplicate address detection (from ::) are part of IPv6.
        for src in (IPV6_LINK_LOCAL, IPV6_UNSPECIFIED):
            yield flow(Stage.IN_PORT_SEC, P_NORMAL, {"in_port": ep.ofport, "eth_type": ETH_IPV6,
                                                     "ipv6_src": src}, goto=nxt)


def _ipv4_sources(ep: Endpoint, ip: str) -> Iterator[Flow]:
    nxt = Stage.IN_ARP_RESPONDER
    yield flow(Stage.IN_PORT_SEC, P_NORMAL, {"in_port": ep.ofport, "eth_type": ETH_ARP,
                                             "arp_spa": ip, "arp_sha": ep.mac}, goto=nxt)
    # Duplicate address detection: a probe for its own address must not be answered (with
    # its own MAC) by the responder; it goes to the network as it is.
    yield flow(Stage.IN_PORT_SEC, P_SPECIFIC, {
        "in_port": ep.ofport, "eth_type": ETH_ARP, "arp_spa": "0.0.0.0",
        "arp_tpa": ip, "arp_sha": ep.mac}, goto=Stage.IN_L2_LOOKUP)
    yield flow(Stage.IN_PORT_SEC, P_NORMAL, {"in_port": ep.ofport, "eth_type": ETH_IPV4,
                                             "ipv4_src": ip}, goto=nxt)
