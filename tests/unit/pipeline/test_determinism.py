"""compile_switch as a whole: the same input gives the same flows and cookies, cookies
are unique, ours and stable across versions, and a change stays local to its tenant."""

from __future__ import annotations

import pytest

from ryu_dove.pipeline.compiler import compile_switch
from ryu_dove.pipeline.flows import Move, Output, SetField, flow, is_ours
from ryu_dove.pipeline.stages import Stage
from tests.unit.pipeline.topology import (
    ALL,
    HVS,
    POLICY,
    build_directory,
    vm,
)

# --- determinism, identity, locality ---------------------------------------------------------

def test_compiling_twice_gives_the_same_flows_and_cookies() -> None:
    first = compile_switch(POLICY, build_directory(), "hv1")
    again = compile_switch(POLICY, build_directory(reversed(ALL), tuple(reversed(HVS))), "hv1")
    assert first == again
    assert sorted(f.cookie for f in first) == sorted(f.cookie for f in again)


@pytest.mark.parametrize("hv", HVS)
def test_cookies_are_unique_and_ours(hv: str) -> None:
    flows = compile_switch(POLICY, build_directory(), hv)
    assert flows
    assert len({f.cookie for f in flows}) == len(flows)
    assert all(is_ours(f.cookie) for f in flows)


def test_unknown_hypervisor_compiles_to_nothing() -> None:
    assert compile_switch(POLICY, build_directory(), "hv9") == frozenset()


def test_new_endpoint_changes_only_hypervisors_of_its_tenant() -> None:
    before = build_directory()
    newcomer = vm("gx4", "globex/web", "hv3", 2, "198.51.100.13", "02:9e:00:00:00:04")
    after = build_directory([*ALL, newcomer])
    changed = {hv for hv in HVS
               if compile_switch(POLICY, before, hv) != compile_switch(POLICY, after, hv)}
    assert changed == {"hv1", "hv2", "hv3"}  # hv4 hosts acme only


def test_cookies_do_not_change_between_versions() -> None:
    """A cookie is a flow's identity on the switches: if the same flow hashed differently
    after an upgrade, a restarted controller would replace every flow it finds."""
    f = flow(Stage.IN_ARP_RESPONDER, 100, {"reg0": 5001, "eth_type": 0x0806, "arp_op": 1,
                                           "arp_tpa": "198.51.100.10"},
             [Move("eth_src", "eth_dst", 48), SetField("eth_src", "02:00:00:00:00:01"),
              Output(0xFFFFFFF8)])
    assert f.cookie == 0xD00320341529B2BD
    assert repr(f.actions) == ("(Move(src='eth_src', dst='eth_dst', n_bits=48), "
                               "SetField(field='eth_src', value='02:00:00:00:00:01'), "
                               "Output(port=4294967288))")
