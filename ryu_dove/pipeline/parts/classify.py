"""IN_CLASSIFY: which network a packet belongs to, from its VM port and MAC or its VNI."""

from __future__ import annotations

from functools import lru_cache

from ryu_dove.directory import Endpoint
from ryu_dove.pipeline.flows import Action, Controller, Flow, SetField, flow
from ryu_dove.pipeline.parts.common import (
    ACTIVATION_METER,
    GATEWAY_MAC,
    MEMO,
    P_NORMAL,
    P_SPECIFIC,
    check,
)
from ryu_dove.pipeline.stages import REG_FROM_TUNNEL, REG_NETWORK, Stage

ACTIVATION_PUNT = Controller(max_len=64, meter_id=ACTIVATION_METER)  # who spoke is enough


@lru_cache(maxsize=MEMO)
def tunnel_classify(vni: int, ofport: int) -> Flow:
    """From the tunnel port of a hypervisor that hosts the network: the VNI is the network;
    port security was checked at the source. Bound to those peers: VXLAN from any other
    (a peer hosting none of the network, or a spoofed source no tunnel port has) is dropped.
    Routed packets among them pass the destination's conntrack too (IN_L3_ROUTE)."""
    return check(flow(Stage.IN_CLASSIFY, P_NORMAL, {"in_port": ofport, "tunnel_id": vni},
                      [SetField(REG_NETWORK, vni), SetField(REG_FROM_TUNNEL, 1)],
                      goto=Stage.IN_L3_ROUTE))


@lru_cache(maxsize=MEMO)
def routed_ingress(vni: int, ofport: int) -> Flow:
    """From the tunnel port of a hypervisor that routes into the network without hosting it:
    only routed packets (from the gateway's MAC), which then pass this side's conntrack."""
    return check(flow(Stage.IN_CLASSIFY, P_SPECIFIC,
                      {"in_port": ofport, "tunnel_id": vni, "eth_src": GATEWAY_MAC},
                      [SetField(REG_NETWORK, vni), SetField(REG_FROM_TUNNEL, 1)],
                      goto=Stage.IN_L3_ROUTE))


def classify_vm(ep: Endpoint, vni: int) -> Flow:
    """From a VM: only its own port with its own MAC is in its network. From a migration's
    standby port, the same, and each packet is copied to the controller (metered): the
    first one the VM sends there makes the move take effect (docs/migration.md)."""
    actions: list[Action] = [SetField(REG_NETWORK, vni)]
    if ep.standby:
        actions.insert(0, ACTIVATION_PUNT)
    return flow(Stage.IN_CLASSIFY, P_NORMAL, {"in_port": ep.ofport, "eth_src": ep.mac},
                actions, goto=Stage.IN_PORT_SEC)
