"""What every part builder shares: protocol numbers, priorities, the gateway MAC, checking."""

from __future__ import annotations

from collections.abc import Iterable

from ryu_dove.pipeline.flows import Flow, FlowMap, check_flow

GATEWAY_MAC = "02:d0:ee:00:00:01"  # answers ARP for every network's gateway address
ETH_ARP, ETH_IPV4, ETH_IPV6 = 0x0806, 0x0800, 0x86DD
IPPROTO_ICMPV6 = 58
ND_SOLICIT, ND_ADVERT = 135, 136
MULTICAST = ("01:00:00:00:00:00", "01:00:00:00:00:00")
IPV6_LINK_LOCAL = ("fe80::", "ffc0::")
IPV6_UNSPECIFIED = "::"

# Priorities inside a stage: specific before general; 0 is each stage's default.
P_DEFAULT, P_NORMAL, P_SPECIFIC = 0, 100, 110
P_ARP_MISS = 10  # under every answer, over the stage's default
P_LEARN, P_LEARN_PASS = 50, 40  # a learning port: punts of new sources, then the rest
PUNT_METER = 1  # the OpenFlow meter learning punts name (created per switch by the reconciler)
ACTIVATION_METER = 2  # and migrations' activation punts: a noisy VM cannot starve a move
PUNT_BYTES = 128  # of a punted packet: ARP, or the IP header and an ND message's target
MEMO = 1 << 18  # distinct flows kept per memoised builder; a miss costs one rebuild


def is_ipv4(ip: str) -> bool:
    """Endpoint addresses are in ipaddress's canonical text (ryu_dove.directory.bindings):
    no parsing."""
    return ":" not in ip


def check(f: Flow) -> Flow:
    check_flow(f)  # once per distinct flow: the builders are memoised
    return f


def checked(flows: Iterable[Flow]) -> FlowMap:
    return {f.cookie: check(f) for f in flows}  # read-only by contract; dicts merge fastest
