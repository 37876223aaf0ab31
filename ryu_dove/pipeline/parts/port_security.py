"""IN_PORT_SEC: a VM may only use its own addresses (ARP and IPv4/IPv6 sources)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from functools import lru_cache

from ryu_dove.directory import Endpoint
from ryu_dove.pipeline.flows import Flow, FlowMap, flow
from ryu_dove.pipeline.parts.classify import classify_vm
from ryu_dove.pipeline.parts.common import (
    ETH_ARP,
    ETH_IPV4,
    ETH_IPV6,
    IPV6_LINK_LOCAL,
    IPV6_UNSPECIFIED,
    MEMO,
    P_NORMAL,
    P_SPECIFIC,
    checked,
)
from ryu_dove.pipeline.stages import Stage


@lru_cache(maxsize=MEMO)
def endpoint_flows(ep: Endpoint, vni: int) -> FlowMap:
    """A local endpoint's own part: its classification and its port security."""
    return checked([classify_vm(ep, vni), *port_security(ep)])


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
