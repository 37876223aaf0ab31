"""IN_ARP_RESPONDER: ARP answered inside OVS, and requests nobody can answer kept local."""

from __future__ import annotations

from functools import lru_cache

from ryu_dove.pipeline.flows import IN_PORT, Action, Flow, MatchValue, Move, Output, SetField, flow
from ryu_dove.pipeline.parts.common import ETH_ARP, MEMO, P_ARP_MISS, P_NORMAL, P_SPECIFIC, check
from ryu_dove.pipeline.stages import REG_FROM_TUNNEL, REG_NETWORK, Stage


@lru_cache(maxsize=MEMO)
def arp_reply(vni: int, ip: str, mac: str) -> tuple[Flow, Flow]:
    """Answer 'who has ip' in OVS: turn the request into the reply and send it back."""
    match: dict[str, MatchValue] = {REG_NETWORK: vni, "eth_type": ETH_ARP, "arp_op": 1,
                                     "arp_tpa": ip}
    # A gratuitous ARP (sender asks for its own address) announces, it does not ask: pass it.
    return (check(flow(Stage.IN_ARP_RESPONDER, P_SPECIFIC, {**match, "arp_spa": ip},
                       goto=Stage.IN_L2_LOOKUP)),
            check(flow(Stage.IN_ARP_RESPONDER, P_NORMAL, match, [
                Move("eth_src", "eth_dst", 48), SetField("eth_src", mac), SetField("arp_op", 2),
                Move("arp_sha", "arp_tha", 48), SetField("arp_sha", mac),
                Move("arp_spa", "arp_tpa", 32), SetField("arp_spa", ip), Output(IN_PORT)])))


@lru_cache(maxsize=MEMO)
def arp_miss(vni: int, local: tuple[int, ...], tunnels: tuple[int, ...]) -> tuple[Flow, Flow]:
    """An ARP request the responder cannot answer does not cross the underlay (DOVE answers
    ARP at the edge): it goes to the network's local ports, and to the hypervisors hosting a
    VM bound without addresses, the only kind that could answer it."""
    local_out: list[Action] = [Output(p) for p in local]
    to_remote: list[Action] = ([SetField("tunnel_id", vni), *(Output(p) for p in tunnels)]
                               if tunnels else [])
    match: dict[str, MatchValue] = {REG_NETWORK: vni, "eth_type": ETH_ARP, "arp_op": 1}
    return (check(flow(Stage.IN_ARP_RESPONDER, P_ARP_MISS, {**match, REG_FROM_TUNNEL: 0},
                       [*local_out, *to_remote])),
            check(flow(Stage.IN_ARP_RESPONDER, P_ARP_MISS, {**match, REG_FROM_TUNNEL: 1},
                       local_out)))
