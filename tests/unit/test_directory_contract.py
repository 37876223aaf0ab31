"""The Directory contract, run against every implementation.

A shared, replicated backend joins by adding its class (or a factory) to IMPLEMENTATIONS;
the compiler and the engine rely on nothing but what these tests state.
"""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ryu_dove.directory import Directory, Endpoint, Hypervisor, MemoryDirectory

IMPLEMENTATIONS: list[Callable[[], Directory]] = [MemoryDirectory]
WEB, DB, GX = "acme/web", "acme/db", "globex/web"


@pytest.fixture(params=IMPLEMENTATIONS, ids=lambda impl: impl.__name__)
def make_directory(request: pytest.FixtureRequest) -> Callable[[], Directory]:
    factory: Callable[[], Directory] = request.param
    return factory


@pytest.fixture
def directory(make_directory: Callable[[], Directory]) -> Directory:
    return make_directory()


def hv(name: str, **tunnels: int) -> Hypervisor:
    return Hypervisor(name, f"192.0.2.{name[-1]}", dpid=int(name[-1]),
                      tunnels=MappingProxyType(tunnels))


def ep(network: str, hypervisor: str, port: str, mac: str, *ips: str) -> Endpoint:
    return Endpoint(network, mac, ips, hypervisor, port, int(port.rsplit("-", 1)[1]),
                    f"iface-{hypervisor}-{port}")


A = ep(WEB, "hv1", "tap-1", "02:00:00:00:00:01", "198.51.100.10")
B = ep(WEB, "hv1", "tap-2", "02:00:00:00:00:02", "198.51.100.11")
C = ep(DB, "hv1", "tap-3", "02:00:00:00:00:03", "198.51.100.70")
D = ep(WEB, "hv2", "tap-1", "02:00:00:00:00:04", "198.51.100.12")
G = ep(GX, "hv2", "tap-2", "02:00:00:00:00:01", "198.51.100.10")  # A's MAC and IP, other tenant


def filled(directory: Directory) -> Directory:
    directory.put_hypervisor(hv("hv1", hv2=101))
    directory.put_hypervisor(hv("hv2", hv1=100))
    directory.replace_endpoints("hv1", [A, B, C])
    directory.replace_endpoints("hv2", [D, G])
    return directory


# --- hypervisors ---------------------------------------------------------------------------

def test_put_and_get_hypervisor(directory: Directory) -> None:
    assert directory.hypervisor("hv1") is None
    directory.put_hypervisor(hv("hv2"))
    directory.put_hypervisor(hv("hv1", hv2=101))
    assert directory.hypervisor("hv1") == hv("hv1", hv2=101)
    assert [h.name for h in directory.hypervisors()] == ["hv1", "hv2"]


def test_put_hypervisor_again_replaces_it(directory: Directory) -> None:
    directory.put_hypervisor(hv("hv1"))
    directory.put_hypervisor(hv("hv1", hv2=101, hv3=102))
    assert directory.hypervisors() == (hv("hv1", hv2=101, hv3=102),)


def test_remove_hypervisor_drops_its_endpoints_and_returns_their_networks(
        directory: Directory) -> None:
    filled(directory)
    assert directory.remove_hypervisor("hv1") == {WEB, DB}
    assert directory.hypervisor("hv1") is None
    assert directory.endpoints() == (D, G)
    assert directory.by_mac(WEB, A.mac) is None
    assert directory.hosting(WEB) == {"hv2"}


def test_remove_unknown_hypervisor_changes_nothing(directory: Directory) -> None:
    filled(directory)
    assert directory.remove_hypervisor("hv9") == set()
    assert len(directory.endpoints()) == 5


# --- replace_endpoints reports exactly the networks that changed -----------------------------

def test_adding_endpoints_reports_their_networks(directory: Directory) -> None:
    assert directory.replace_endpoints("hv1", [A, C]) == {WEB, DB}
    assert directory.replace_endpoints("hv2", [D]) == {WEB}


def test_same_endpoints_again_report_nothing(directory: Directory) -> None:
    filled(directory)
    assert directory.replace_endpoints("hv1", [C, B, A]) == set()


def test_port_moved_to_another_network_reports_both(directory: Directory) -> None:
    filled(directory)
    moved = ep(GX, "hv1", "tap-2", B.mac, "198.51.100.11")
    assert directory.replace_endpoints("hv1", [A, moved, C]) == {WEB, GX}
    assert directory.by_mac(WEB, B.mac) is None
    assert directory.by_mac(GX, B.mac) == moved


def test_changed_endpoint_reports_its_network(directory: Directory) -> None:
    filled(directory)
    readdressed = ep(WEB, "hv1", "tap-2", B.mac, "198.51.100.20")
    assert directory.replace_endpoints("hv1", [A, readdressed, C]) == {WEB}
    assert directory.by_ip(WEB, "198.51.100.11") is None


def test_removing_endpoints_reports_their_networks(directory: Directory) -> None:
    filled(directory)
    assert directory.replace_endpoints("hv1", [A]) == {WEB, DB}
    assert directory.replace_endpoints("hv1", []) == {WEB}
    assert directory.networks_on("hv1") == frozenset()


def test_replacing_one_hypervisor_keeps_the_others(directory: Directory) -> None:
    filled(directory)
    directory.replace_endpoints("hv1", [])
    assert directory.endpoints() == (D, G)


# --- reads ---------------------------------------------------------------------------------

def test_endpoints_order_does_not_depend_on_history(
        make_directory: Callable[[], Directory]) -> None:
    directory = make_directory()
    directory.replace_endpoints("hv2", [G, D])
    directory.replace_endpoints("hv1", [C, B, A])
    other = filled(make_directory())
    assert directory.endpoints() == other.endpoints()
    assert directory.endpoints(WEB) == other.endpoints(WEB)
    assert directory.endpoints() == directory.endpoints()


def test_endpoints_of_one_network(directory: Directory) -> None:
    filled(directory)
    assert set(directory.endpoints(WEB)) == {A, B, D}
    assert directory.endpoints("acme/none") == ()


def test_lookups_are_per_network(directory: Directory) -> None:
    filled(directory)
    assert directory.by_mac(WEB, A.mac) == A
    assert directory.by_mac(GX, A.mac) == G
    assert directory.by_ip(WEB, "198.51.100.10") == A
    assert directory.by_ip(GX, "198.51.100.10") == G
    assert directory.by_ip(DB, "198.51.100.10") is None
    assert directory.by_mac(DB, A.mac) is None


def test_hosting_and_networks_on(directory: Directory) -> None:
    filled(directory)
    assert directory.hosting(WEB) == {"hv1", "hv2"}
    assert directory.hosting(DB) == {"hv1"}
    assert directory.hosting("acme/none") == frozenset()
    assert directory.networks_on("hv1") == {WEB, DB}
    assert directory.networks_on("hv2") == {WEB, GX}
    assert directory.networks_on("hv9") == frozenset()


# --- the change report, for any sequence of bindings ---------------------------------------

NETWORKS = (WEB, DB, GX)
bindings = st.lists(st.tuples(st.sampled_from(NETWORKS), st.integers(0, 2)), max_size=4,
                    unique_by=lambda binding: binding[1])  # a port is bound once
updates = st.lists(st.tuples(st.sampled_from(("hv1", "hv2")), bindings), max_size=8)


def snapshot(directory: Directory) -> dict[str, frozenset[Endpoint]]:
    return {n: frozenset(directory.endpoints(n)) for n in NETWORKS}


@pytest.mark.parametrize("factory", IMPLEMENTATIONS, ids=lambda impl: impl.__name__)
@settings(max_examples=100, deadline=None)
@given(updates)
def test_changed_networks_are_exactly_those_whose_endpoints_differ(
        factory: Callable[[], Directory],
        steps: list[tuple[str, list[tuple[str, int]]]]) -> None:
    directory = factory()
    for host, bound in steps:
        new = [ep(net, host, f"tap-{port}", f"02:00:00:00:0{port}:{NETWORKS.index(net):02x}")
               for net, port in bound]
        before = snapshot(directory)
        changed = directory.replace_endpoints(host, new)
        after = snapshot(directory)
        assert changed == {n for n in NETWORKS if before[n] != after[n]}
        assert {e for e in directory.endpoints() if e.hypervisor == host} == set(new)


def test_a_standby_port_is_on_its_hypervisor_but_no_lookup_finds_it(
        directory: Directory) -> None:
    from dataclasses import replace
    filled(directory)
    moving = replace(A, hypervisor="hv3", port="tap-9", ofport=9, standby=True)
    directory.put_hypervisor(hv("hv3"))
    assert directory.replace_endpoints("hv3", [moving]) == {WEB}
    assert directory.endpoints_on("hv3") == (moving,)
    assert "hv3" in directory.hosting(WEB) and directory.networks_on("hv3") == {WEB}
    assert directory.by_mac(WEB, A.mac) == A and directory.by_ip(WEB, A.ips[0]) == A
    assert moving not in directory.endpoints(WEB)
    assert directory.standby(WEB, A.mac) == (moving,)
    directory.replace_endpoints("hv3", [])
    assert directory.standby(WEB, A.mac) == () and "hv3" not in directory.hosting(WEB)
