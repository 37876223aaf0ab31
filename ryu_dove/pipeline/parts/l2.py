"""IN_L2_LOOKUP: a destination MAC to a local port or a remote hypervisor; flooding."""

from __future__ import annotations

from functools import lru_cache

from ryu_dove.pipeline.flows import Action, Flow, MatchValue, Output, SetField, flow
from ryu_dove.pipeline.parts.common import MEMO, MULTICAST, P_NORMAL, check
from ryu_dove.pipeline.stages import REG_FROM_TUNNEL, REG_NETWORK, REG_REMOTE, Stage


@lru_cache(maxsize=MEMO)
def remote_unicast(vni: int, mac: str, rkey: int) -> Flow:
    # Only traffic from local VMs goes out to a tunnel: no hairpin between hypervisors.
    return check(flow(Stage.IN_L2_LOOKUP, P_NORMAL,
                      {REG_NETWORK: vni, REG_FROM_TUNNEL: 0, "eth_dst": mac},
                      [SetField(REG_REMOTE, rkey), SetField("tunnel_id", vni)],
                      goto=Stage.OUT_TUNNEL))


@lru_cache(maxsize=MEMO)
def local_unicast(vni: int, mac: str, ofport: int) -> Flow:
    return check(flow(Stage.IN_L2_LOOKUP, P_NORMAL, {REG_NETWORK: vni, "eth_dst": mac},
                      [Output(ofport)]))


@lru_cache(maxsize=MEMO)
def flood(vni: int, local: tuple[int, ...], tunnels: tuple[int, ...]) -> tuple[Flow, Flow]:
    """Broadcast and multicast: local ports, plus each hypervisor hosting the network once;
    from a tunnel, local ports only."""
    local_out: list[Action] = [Output(p) for p in local]
    match: dict[str, MatchValue] = {REG_NETWORK: vni, "eth_dst": MULTICAST}
    to_remote: list[Action] = ([SetField("tunnel_id", vni), *(Output(p) for p in tunnels)]
                               if tunnels else [])
    return (check(flow(Stage.IN_L2_LOOKUP, P_NORMAL, {**match, REG_FROM_TUNNEL: 0},
                       [*local_out, *to_remote])),
            check(flow(Stage.IN_L2_LOOKUP, P_NORMAL, {**match, REG_FROM_TUNNEL: 1}, local_out)))
