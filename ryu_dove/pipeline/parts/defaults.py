"""Every stage's table-miss flow: what happens to a packet no other flow of the stage takes."""

from __future__ import annotations

from collections.abc import Iterator

from ryu_dove.pipeline.flows import Flow, FlowMap, flow
from ryu_dove.pipeline.parts.common import P_DEFAULT, checked
from ryu_dove.pipeline.stages import Stage


def _defaults() -> Iterator[Flow]:
    yield flow(Stage.IN_CLASSIFY, P_DEFAULT)  # unknown port, MAC or VNI: drop
    yield flow(Stage.IN_PORT_SEC, P_DEFAULT)  # spoofed source: drop
    yield flow(Stage.IN_ARP_RESPONDER, P_DEFAULT, goto=Stage.IN_L2_LOOKUP)
    yield flow(Stage.IN_L2_LOOKUP, P_DEFAULT)  # unknown destination: drop
    yield flow(Stage.OUT_TUNNEL, P_DEFAULT)  # no tunnel to that hypervisor (yet): drop


DEFAULTS: FlowMap = checked(_defaults())
