"""The stage contract of ryu_dove.pipeline.stages: check_flow, and every compiled flow
against it and the OpenFlow rules of the fake switch."""

from __future__ import annotations

import pytest

from ryu_dove.pipeline.compiler import compile_switch
from ryu_dove.pipeline.flows import Flow, FlowError, check_flow, flow
from ryu_dove.pipeline.stages import Stage
from tests.fakes.br_int import FakeBrInt
from tests.unit.pipeline.topology import (
    HVS,
    POLICY,
    WEB1,
    build_directory,
)

# --- the stage contract --------------------------------------------------------------------

@pytest.mark.parametrize("bad", [
    flow(Stage.IN_CLASSIFY, 1, {"eth_dst": WEB1.mac}, goto=Stage.IN_PORT_SEC),
    flow(Stage.IN_L2_LOOKUP, 1, {"in_port": 1}),
    flow(Stage.IN_L2_LOOKUP, 1, {}, goto=Stage.IN_CLASSIFY),
    flow(Stage.IN_ARP_RESPONDER, 1, {}, goto=Stage.IN_PORT_SEC),
    flow(Stage.IN_CLASSIFY, 1, {}, goto=Stage.IN_ARP_RESPONDER),  # forward, but not declared
], ids=["field-classify", "field-l2", "goto-back", "goto-back-one", "goto-skip"])
def test_check_flow_rejects_what_the_stage_does_not_allow(bad: Flow) -> None:
    with pytest.raises(FlowError):
        check_flow(bad)


@pytest.mark.parametrize("hv", HVS)
def test_every_flow_keeps_the_stage_contract_and_openflow_rules(hv: str) -> None:
    flows = compile_switch(POLICY, build_directory(), hv)
    for f in flows:
        check_flow(f)
    FakeBrInt(flows)  # refuses unmet prerequisites, backwards gotos, conflicting duplicates
