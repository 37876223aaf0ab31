"""IN_ARP_RESPONDER's IPv6 twin: neighbour solicitations answered inside OVS (RFC 4861), and
those nobody can answer kept off the underlay, as ARP is.

A solicitation is turned into the advertisement in place, in two steps, because OVS checks a
set-field's prerequisites against the flow's match, not against earlier actions: the target
link-layer address may only be written by a flow that matches an advertisement (type 136).
IN_ARP_RESPONDER rewrites addresses, type, flags and the option's type (1, source link-layer,
becomes 2, target link-layer) and writes the target's MAC as the Ethernet source; IN_ND_REPLY,
which only such packets reach, copies that MAC into the option and sends the packet back.

Link-local addresses are not in the directory (a VM makes them up), so solicitations for
them are resolved as on a LAN, by the network's L2 flooding, like any other multicast.

Solicitations without a source link-layer option are not answered: duplicate address detection
(from ::, RFC 4862) must not be told by OVS that a VM's own address is taken, and an answer
could not be addressed to a VM that gave no MAC. They go where an unanswerable one goes.
"""

from __future__ import annotations

from functools import lru_cache

from ryu_dove.pipeline.flows import IN_PORT, Action, Flow, MatchValue, Move, Output, SetField, flow
from ryu_dove.pipeline.parts.common import (
    ETH_IPV6,
    IPPROTO_ICMPV6,
    IPV6_LINK_LOCAL,
    MEMO,
    ND_ADVERT,
    ND_SOLICIT,
    P_ARP_MISS,
    P_DEFAULT,
    P_NORMAL,
    P_SPECIFIC,
    check,
)
from ryu_dove.pipeline.stages import REG_FROM_TUNNEL, REG_NETWORK, Stage

ND_OPT_TARGET_LL = 2
# An advertisement's flags (RFC 4861 4.4): Router, Solicited, Override.
ND_ROUTER, ND_SOLICITED, ND_OVERRIDE = 0x80000000, 0x40000000, 0x20000000
P_LINK_LOCAL = P_ARP_MISS + 1  # over the miss, under every answer
NO_MAC = "00:00:00:00:00:00"  # how OVS shows a missing link-layer option
_ICMPV6: dict[str, MatchValue] = {"eth_type": ETH_IPV6, "ip_proto": IPPROTO_ICMPV6}


def _solicitation(vni: int) -> dict[str, MatchValue]:
    return {REG_NETWORK: vni, **_ICMPV6, "icmpv6_type": ND_SOLICIT}


@lru_cache(maxsize=MEMO)
def nd_reply(vni: int, ip: str, mac: str, router: bool = False) -> Flow:
    """Answer 'who has ip' (a solicitation for it, in the network) in OVS, from mac."""
    flags = ND_SOLICITED | ND_OVERRIDE | (ND_ROUTER if router else 0)
    return check(flow(Stage.IN_ARP_RESPONDER, P_NORMAL, {**_solicitation(vni),
                                                          "ipv6_nd_target": ip}, [
        Move("eth_src", "eth_dst", 48), SetField("eth_src", mac),
        Move("ipv6_src", "ipv6_dst", 128), SetField("ipv6_src", ip),
        SetField("icmpv6_type", ND_ADVERT), SetField("nd_reserved", flags),
        SetField("nd_options_type", ND_OPT_TARGET_LL)], goto=Stage.IN_ND_REPLY))


@lru_cache(maxsize=MEMO)
def nd_miss(vni: int, local: tuple[int, ...], tunnels: tuple[int, ...]) -> tuple[Flow, ...]:
    """A solicitation the responder cannot (or must not) answer goes to the network's local
    ports, and to the hypervisors hosting a VM bound without addresses (arp_miss's rule)."""
    local_out: list[Action] = [Output(p) for p in local]
    to_remote: list[Action] = ([SetField("tunnel_id", vni), *(Output(p) for p in tunnels)]
                               if tunnels else [])
    flows = []
    for priority, extra in ((P_ARP_MISS, {}), (P_SPECIFIC, {"ipv6_nd_sll": NO_MAC})):
        match = {**_solicitation(vni), **extra}
        flows.append(flow(Stage.IN_ARP_RESPONDER, priority, {**match, REG_FROM_TUNNEL: 0},
                          [*local_out, *to_remote]))
        flows.append(flow(Stage.IN_ARP_RESPONDER, priority, {**match, REG_FROM_TUNNEL: 1},
                          local_out))
    return tuple(check(f) for f in flows)


def nd_defaults() -> tuple[Flow, ...]:
    """What every switch has: link-local targets left to L2, and IN_ND_REPLY, where an
    advertisement gets its target's MAC in its option and goes back."""
    return (flow(Stage.IN_ARP_RESPONDER, P_LINK_LOCAL, {**_ICMPV6, "icmpv6_type": ND_SOLICIT,
                                                        "ipv6_nd_target": IPV6_LINK_LOCAL},
                 goto=Stage.IN_L3_ROUTE),
            flow(Stage.IN_ND_REPLY, P_NORMAL, {**_ICMPV6, "icmpv6_type": ND_ADVERT},
                 [Move("eth_src", "ipv6_nd_tll", 48), Output(IN_PORT)]),
            flow(Stage.IN_ND_REPLY, P_DEFAULT))
