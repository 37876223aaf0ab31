"""Every stage's table-miss flow: what happens to a packet no other flow of the stage takes."""

from __future__ import annotations

from collections.abc import Iterator

from ryu_dove.pipeline.flows import Ct, Flow, FlowMap, SetField, flow
from ryu_dove.pipeline.parts.common import ETH_IPV4, ETH_IPV6, P_DEFAULT, P_NORMAL, checked
from ryu_dove.pipeline.parts.neighbour import nd_defaults
from ryu_dove.pipeline.stages import REG_TRACK_HERE, REG_ZONE, Stage


def _defaults() -> Iterator[Flow]:
    yield flow(Stage.IN_CLASSIFY, P_DEFAULT)  # unknown port, MAC or VNI: drop
    yield flow(Stage.IN_PORT_SEC, P_DEFAULT)  # spoofed source: drop
    yield flow(Stage.IN_ARP_RESPONDER, P_DEFAULT, goto=Stage.IN_L3_ROUTE)
    yield from nd_defaults()
    yield flow(Stage.IN_L3_ROUTE, P_DEFAULT, goto=Stage.IN_L2_LOOKUP)  # not routed: L2
    # Only routed packets reach the ACL: through conntrack, in their tenant's zone.
    for eth_type in (ETH_IPV4, ETH_IPV6):
        yield flow(Stage.IN_ACL, P_NORMAL, {"eth_type": eth_type},
                   [Ct(zone=REG_ZONE, table=Stage.IN_ACL_STATE)])
    yield flow(Stage.IN_ACL, P_DEFAULT)
    yield flow(Stage.IN_ACL_STATE, P_DEFAULT)  # no rule allows it: drop
    # Routed by the end that does not track the connection, and not sent on to the end that
    # does (P_LOOKUP_REMOTE is above): delivered here, so this end tracks it after all.
    for eth_type in (ETH_IPV4, ETH_IPV6):
        yield flow(Stage.IN_L3_LOOKUP, P_NORMAL + 1, {REG_TRACK_HERE: 1, "eth_type": eth_type},
                   [SetField(REG_TRACK_HERE, 0), Ct(zone=REG_ZONE, table=Stage.IN_ACL_STATE)])
    yield flow(Stage.IN_L3_LOOKUP, P_DEFAULT)  # an address nobody holds: drop
    yield flow(Stage.IN_L2_LOOKUP, P_DEFAULT)  # unknown destination: drop
    yield flow(Stage.OUT_TUNNEL, P_DEFAULT)  # no tunnel to that hypervisor (yet): drop


DEFAULTS: FlowMap = checked(_defaults())
