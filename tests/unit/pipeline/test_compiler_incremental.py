"""Flow parts shared between hypervisors, and the incremental Compiler that reuses them
across directory changes. Topology: tests/unit/pipeline/topology.py."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

from hypothesis import given, settings
from hypothesis import strategies as st

from ryu_dove.directory import Endpoint, MemoryDirectory
from ryu_dove.pipeline.compiler import Compiler, compile_switch
from ryu_dove.pipeline.flows import Flow
from ryu_dove.pipeline.parts import network
from tests.fakes.br_int import FakeBrInt
from tests.unit.pipeline.topology import (
    ALL,
    HVS,
    POLICY,
    VNI,
    WEB1,
    WEB2,
    WEB3,
    WEB4,
    build_directory,
    fate,
    hypervisor,
    to,
    tunnel,
    vm,
)

# --- shared parts and the incremental compiler ---------------------------------------------

def test_a_remote_endpoint_has_the_same_flow_on_every_hypervisor() -> None:
    directory = build_directory()
    cookies = {hv: {f.cookie for f in compile_switch(POLICY, directory, hv)
                    if dict(f.match).get("eth_dst") == WEB3.mac}
               for hv in ("hv1", "hv4")}
    assert cookies["hv1"] == cookies["hv4"] and len(cookies["hv1"]) == 1


def test_no_tunnel_to_a_hypervisor_drops_its_unicast() -> None:
    directory = build_directory()
    directory.put_hypervisor(dataclasses.replace(hypervisor("hv1"), tunnels=MappingProxyType(
        {"hv3": tunnel("hv3"), "hv4": tunnel("hv4")})))  # the tunnel to hv2 is not there yet
    switch = FakeBrInt(compile_switch(POLICY, directory, "hv1"))
    assert switch.process(to(WEB1, WEB3), in_port=WEB1.ofport) == []
    assert fate(switch.process(to(WEB1, WEB4), in_port=WEB1.ofport)) == {tunnel("hv4"): 5001}


def test_a_part_amended_from_members_that_came_and_went_equals_a_fresh_build() -> None:
    """Including members a fresh build would treat specially: one claiming the gateway's
    address, one sharing a MAC (bindings refuse both, a directory in flux may hold them)."""
    net = POLICY.network("acme/web")
    assert net is not None
    keys = (("hv1", 1), ("hv2", 2))
    odd = vm("odd", "acme/web", "hv2", 7, str(net.gateway), "02:ac:00:00:00:77")
    twin = vm("twin", "acme/web", "hv2", 8, "198.51.100.99", WEB1.mac)
    fresh = vm("fresh", "acme/web", "hv2", 9, "198.51.100.98", "02:ac:00:00:00:98")
    steps = [(WEB1,), (WEB1, WEB2), (WEB1, WEB2, odd), (WEB1, WEB2), (WEB1, WEB2, twin),
             (WEB2, twin), (WEB2, fresh), (fresh,), ()]
    part = network.build_part(net, (), keys)
    for members in steps:
        part = part.successor(members, keys)
        expected = network.build_part(net, members, keys)
        assert part.shared == expected.shared, members
        assert (part.remote_unicast, part.local, part.addressless, part.claims) == (
            expected.remote_unicast, expected.local, expected.addressless, expected.claims)


def apply_step(directory: MemoryDirectory, op: str, ep: Endpoint, hv: str) -> None:
    """One change: ep put on hv, hv's first endpoint dropped, hv's VM ports renumbered (the
    same endpoints on new ofports), or hv's tunnels re-created."""
    on_hv = list(directory.endpoints_on(hv))
    if op == "put":
        moved = dataclasses.replace(ep, hypervisor=hv, port=f"{ep.port}-{hv}")
        directory.replace_endpoints(hv, [*on_hv, moved])
    elif op == "drop" and on_hv:
        directory.replace_endpoints(hv, on_hv[1:])
    elif op == "renumber":
        directory.replace_endpoints(hv, [dataclasses.replace(e, ofport=e.ofport + 10)
                                         for e in on_hv])
    elif op == "tunnels":  # the tunnel ports were re-created: new ofports
        old = directory.hypervisor(hv)
        assert old is not None
        directory.put_hypervisor(dataclasses.replace(old, tunnels=MappingProxyType(
            {r: p + 50 for r, p in old.tunnels.items()})))


def follow(mirror: dict[int, Flow], flows: dict[int, Flow], changed: set[int]) -> None:
    """What a reconciler does with the changed cookies: its copy of the switch follows."""
    for cookie in changed:
        if cookie in flows:
            mirror[cookie] = flows[cookie]
        else:
            del mirror[cookie]


changes = st.lists(st.tuples(st.sampled_from(("put", "drop", "renumber", "tunnels")),
                             st.sampled_from(ALL), st.sampled_from(HVS)), max_size=12)


@settings(max_examples=60, deadline=None)
@given(changes)
def test_incremental_compiler_agrees_with_a_fresh_compile(
        steps: list[tuple[str, Endpoint, str]]) -> None:
    """One long-lived Compiler reuses parts across changes; it must never serve stale ones."""
    directory = build_directory()
    compiler = Compiler()
    mirrors: dict[str, dict[int, Flow]] = {}
    for op, ep, hv in steps:
        apply_step(directory, op, ep, hv)
        work = {name: None for name in HVS}  # whole switches; the engine's tests cover parts
        for name, switch, changed in compiler.switches(POLICY, directory, work):
            expected = compile_switch(POLICY, directory, name)
            assert set(switch.flows.values()) == expected
            follow(mirrors.setdefault(name, {}), switch.flows, changed)
            assert set(mirrors[name].values()) == expected


@settings(max_examples=80, deadline=None)
@given(changes)
def test_changes_applied_by_network_agree_with_a_fresh_compile(
        steps: list[tuple[str, Endpoint, str]]) -> None:
    """As the engine asks: the changed hypervisor whole when it changed itself, every other
    switch by the networks that changed, so routing lookups are amended in place."""
    directory = build_directory()
    compiler = Compiler()
    mirrors = {name: dict(sw.flows) for name, sw, _ in
               compiler.switches(POLICY, directory, {name: None for name in HVS})}
    networks = frozenset(VNI)
    for op, ep, hv in steps:
        apply_step(directory, op, ep, hv)
        work = {name: (None if op == "tunnels" and name == hv else networks) for name in HVS}
        for name, switch, changed in compiler.switches(POLICY, directory, work, local={hv}):
            expected = compile_switch(POLICY, directory, name)
            assert set(switch.flows.values()) == expected, name
            follow(mirrors.setdefault(name, {}), switch.flows, changed)
            assert set(mirrors[name].values()) == expected, name
