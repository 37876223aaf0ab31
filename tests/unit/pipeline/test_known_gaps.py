"""Inputs the directory accepts but the compiler could turn into conflicting flows.
Topology: tests/unit/pipeline/topology.py."""

from __future__ import annotations

import dataclasses

from ryu_dove.pipeline.compiler import GATEWAY_MAC, compile_switch
from tests.fakes.br_int import FakeBrInt
from tests.unit.pipeline.topology import (
    ALL,
    POLICY,
    WEB1,
    WEB3,
    ask,
    build_directory,
    to,
    vm,
)

# --- known gaps: inputs the directory accepts but the compiler turns into conflicts ---------
# InvalidFlow: two flows with one match and priority but different actions; OVS keeps the last
# one added, and as their cookies differ the reconciler would re-add the other for ever.
# AmbiguousMatch: overlapping equal-priority flows; which one OVS picks is undefined.

MOVING_WEB3 = dataclasses.replace(WEB3, hypervisor="hv1", port="tap-web3-new", ofport=9)


def test_vm_mid_move_seen_locally_has_a_defined_fate() -> None:
    switch = FakeBrInt(compile_switch(POLICY, build_directory([*ALL, MOVING_WEB3]), "hv1"))
    assert switch.outputs(to(WEB1, WEB3), in_port=WEB1.ofport) == {MOVING_WEB3.ofport}


def test_vm_mid_move_seen_remotely_compiles_to_one_flow_per_match() -> None:
    FakeBrInt(compile_switch(POLICY, build_directory([*ALL, MOVING_WEB3]), "hv4"))


def test_duplicate_ip_in_a_network_compiles_to_one_arp_answer() -> None:
    twin = vm("twin", "acme/web", "hv4", 2, WEB1.ips[0], "02:ac:00:00:00:99")
    FakeBrInt(compile_switch(POLICY, build_directory([*ALL, twin]), "hv1"))


def test_endpoint_with_the_gateway_address_does_not_hijack_the_gateway() -> None:
    squatter = vm("squat", "acme/web", "hv4", 2, "198.51.100.1", "02:ac:00:00:00:98")
    switch = FakeBrInt(compile_switch(POLICY, build_directory([*ALL, squatter]), "hv1"))
    (reply,) = switch.process(ask(WEB1, "198.51.100.1"), in_port=WEB1.ofport)
    assert reply.packet["arp_sha"] == GATEWAY_MAC
