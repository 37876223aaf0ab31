"""The engine with fake switches and a fake clock: restart safety, reconnects."""

from __future__ import annotations

import types
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ovsdb_agent import contract
from ovsdb_agent.reports import HypervisorReport, PortInfo, TunnelSpec
from ryu_dove.directory import MemoryDirectory
from ryu_dove.engine.loop import Engine, Timing
from ryu_dove.engine.saved_state import SavedState
from ryu_dove.events import (
    MessageKind,
    OvsdbReport,
    SwitchDown,
    SwitchMessage,
    SwitchUp,
)
from ryu_dove.northbound import views
from ryu_dove.pipeline.compiler import compile_switch
from ryu_dove.policy import load_policy
from ryu_dove.tunnel_ids import tunnel_port_name
from tests.fakes.of_channel import FakeChannel

POLICY = load_policy([str(Path(__file__).resolve().parents[2] / "policies" / "example.yaml")])
TEPS = {"hv1": "192.0.2.1", "hv2": "192.0.2.2", "hv3": "192.0.2.3"}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def vm_port(name: str, ofport: int, mac: str, ip: str, net: str = "acme/web") -> PortInfo:
    ids = {contract.IFACE_ID: name, contract.ATTACHED_MAC: mac, contract.NETWORK: net,
           contract.IPS: ip}
    return PortInfo(f"vif-{name}", ofport, "", tuple(sorted(ids.items())), (), None)


def tunnel_port(remote: str, ofport: int) -> PortInfo:
    ids = {contract.OWNER: contract.OWNER_VALUE, contract.REMOTE: remote}
    return PortInfo(tunnel_port_name(TEPS[remote]), ofport, "vxlan", tuple(sorted(ids.items())),
                    (("remote_ip", TEPS[remote]),), None)


def report(hv: str, *ports: PortInfo, conn: str | None = None,
           tep: str | None = None) -> OvsdbReport:
    dpid = int(hv[2:])
    return OvsdbReport(HypervisorReport(conn or f"tcp:{hv}", hv, tep or TEPS[hv], "netdev",
                                        dpid, tuple(sorted(ports, key=lambda p: p.name))))


EXPIRY_S = 3600.0


class Harness:
    def __init__(self, saved: SavedState | None = None) -> None:
        self.clock = Clock()
        self.tunnels: dict[str, Mapping[str, TunnelSpec]] = {}
        self.engine = Engine(POLICY, MemoryDirectory(), self._write_tunnels,
                             Timing(min_grace_s=1.0, max_grace_s=30.0, expiry_s=EXPIRY_S),
                             clock=self.clock, wall=self.clock, saved=saved)
        self.switches: dict[int, FakeChannel] = {}

    def _write_tunnels(self, hv: str, desired: Mapping[str, TunnelSpec]) -> None:
        self.tunnels[hv] = dict(desired)

    def switch_up(self, dpid: int, sw: FakeChannel | None = None) -> FakeChannel:
        sw = sw or FakeChannel(dpid=dpid)
        self.switches[dpid] = sw
        self.run(SwitchUp(sw.dp))
        return sw

    def run(self, *events: object) -> None:
        """Deliver events, then every reply the switches have, until all is quiet."""
        self.engine.handle_batch(list(events))
        while any(sw.replies for sw in self.switches.values()):
            batch = [SwitchMessage(dpid, kind, msg) for dpid, sw in self.switches.items()
                     for kind, msg in sw.take_replies()]
            self.engine.handle_batch(batch)

    def later(self, seconds: float) -> None:
        self.clock.now += seconds
        self.run()


A1 = vm_port("a1", 1, "02:00:00:00:00:01", "198.51.100.10")
A2 = vm_port("a2", 1, "02:00:00:00:00:02", "198.51.100.11")


def converged() -> Harness:
    h = Harness()
    h.run(report("hv1", A1), report("hv2", A2))
    h.switch_up(1)
    h.switch_up(2)
    h.later(1.0)
    h.run(report("hv1", A1, tunnel_port("hv2", 9)), report("hv2", A2, tunnel_port("hv1", 9)))
    return h


def test_switches_get_their_flows_and_tunnels_after_the_grace():
    h = Harness()
    h.run(report("hv1", A1), report("hv2", A2))
    sw1, sw2 = h.switch_up(1), h.switch_up(2)
    assert sw1.table == {} and h.tunnels == {}  # nothing before the startup grace
    h.later(1.0)
    assert h.tunnels == {"hv1": {"dv-c0000202": TunnelSpec("192.0.2.2", "hv2")},
                         "hv2": {"dv-c0000201": TunnelSpec("192.0.2.1", "hv1")}}
    assert sw1.table and sw2.table
    assert all(rec.in_sync for rec in h.engine.reconcilers.values())


def test_restart_waits_for_hypervisors_the_switches_name_and_then_changes_nothing():
    before = converged()
    old1, old2 = before.switches[1], before.switches[2]
    h = Harness()  # the controller restarted; the switches kept their flows
    h.switch_up(1, FakeChannel(dpid=1, table=dict(old1.table)))
    h.run(report("hv1", A1, tunnel_port("hv2", 9)))
    h.later(5.0)  # hv1's tunnel port names hv2, which has not reported yet: wait
    assert not h.engine.released
    h.switch_up(2, FakeChannel(dpid=2, table=dict(old2.table)))
    h.run(report("hv2", A2, tunnel_port("hv1", 9)))
    assert h.engine.released
    for dpid in (1, 2):
        assert h.switches[dpid].flow_mods_sent() == []  # not one flow changed
        assert h.engine.reconcilers[dpid].in_sync


def test_restart_gives_up_waiting_for_a_silent_hypervisor():
    h = Harness()
    h.switch_up(1)
    h.run(report("hv1", A1, tunnel_port("hv2", 9)))
    h.later(29.0)
    assert not h.engine.released
    h.later(1.5)
    assert h.engine.released and h.engine.reconcilers[1].in_sync


def test_a_late_disconnect_of_an_old_connection_keeps_the_new_one():
    h = converged()
    old = h.switches[2]
    new = h.switch_up(2, FakeChannel(dpid=2, table=dict(old.table)))
    h.run(SwitchDown(old.dp))  # os-ken reports the old connection's end afterwards
    assert h.engine.reconcilers[2].dp is new.dp


def test_bindings_refused_then_accepted_when_the_conflict_goes():
    h = converged()
    twin = vm_port("twin", 2, "02:00:00:00:00:99", "198.51.100.10")  # a1's address
    h.run(report("hv2", A2, twin, tunnel_port("hv1", 9)))
    refused = h.engine.endpoints.refused["hv2"]
    assert [r.iface_id for r in refused] == ["twin"]
    assert "198.51.100.10 is bound on hv1" in refused[0].reason
    h.run(report("hv1", tunnel_port("hv2", 9)))  # a1 unplugged
    assert h.engine.endpoints.refused.get("hv2", []) == []
    assert h.engine.directory.by_ip("acme/web", "198.51.100.10").iface_id == "twin"


def test_restart_with_slow_reconnects_touches_nothing_until_everyone_is_back():
    before = converged()
    old1, old2 = before.switches[1], before.switches[2]
    h = Harness()
    h.later(5.0)  # switches reconnect with backoff: nobody has reported yet
    assert not h.engine.released and h.tunnels == {}
    h.run(report("hv2", A2, tunnel_port("hv1", 9)))  # hv2 first; its tunnel names hv1
    h.switch_up(2, FakeChannel(dpid=2, table=dict(old2.table)))
    h.later(1.0)
    assert not h.engine.released and h.tunnels == {}  # no tunnel to hv1 deleted meanwhile
    h.switch_up(1, FakeChannel(dpid=1, table=dict(old1.table)))
    h.run(report("hv1", A1, tunnel_port("hv2", 9)))
    assert h.engine.released
    assert h.tunnels["hv2"] == {"dv-c0000201": TunnelSpec("192.0.2.1", "hv1")}
    assert h.switches[1].flow_mods_sent() == [] and h.switches[2].flow_mods_sent() == []


def test_views_build_the_section_asked_for_or_all() -> None:
    h = converged()
    tunnels = views.build(h.engine, "tunnels")
    assert set(tunnels) == {"tunnels"} and {t["hypervisor"] for t in tunnels["tunnels"]} == {
        "hv1", "hv2"}
    assert set(views.build(h.engine)) == set(views.SECTIONS)
    assert set(views.build(h.engine, "controller")["controller"]["engine"]) == {
        "batches", "events", "busy_s", "longest_batch_ms", "queued", "heap_frozen",
        "heap_sweeps"}
    with pytest.raises(KeyError, match="nope"):
        views.build(h.engine, "nope")


# --- the incremental compile, held to a fresh one ------------------------------------------

HVS3 = ("hv1", "hv2", "hv3")
VMS = (  # name, MAC, address, network: some share a MAC or an address on purpose
    ("w1", "02:00:00:00:01:01", "198.51.100.10", "acme/web"),
    ("w2", "02:00:00:00:01:02", "198.51.100.11", "acme/web"),
    ("w3", "02:00:00:00:01:03", "198.51.100.12", "acme/web"),
    ("d1", "02:00:00:00:02:01", "198.51.100.70", "acme/db"),
    ("g1", "02:00:00:00:03:01", "198.51.100.10", "globex/web"),
    ("g2", "02:00:00:00:01:01", "198.51.100.13", "globex/web"),
    ("twin", "02:00:00:00:01:09", "198.51.100.10", "acme/web"),
    ("bare", "02:00:00:00:01:0a", "", "acme/web"),  # bound without addresses
)
steps = st.lists(st.tuples(st.sampled_from(HVS3),
                           st.lists(st.sampled_from(VMS), unique=True, max_size=3),
                           st.sampled_from((None, "192.0.2.23"))), max_size=8)


@settings(max_examples=50, deadline=None)
@given(steps)
def test_every_switch_holds_what_a_fresh_compile_gives(
        changes: list[tuple[str, list[tuple[str, str, str, str]], str | None]]) -> None:
    """Random reports (VMs coming, going, conflicting; a TEP renumbered): after each, every
    switch holds exactly compile_switch's flows, whatever the engine chose to recompute."""
    h = Harness()
    teps = dict(TEPS)

    def ports_of(hv: str, vms: list[tuple[str, str, str, str]]) -> list[PortInfo]:
        tunnels = [tunnel_port(r, 10 + i) for i, r in enumerate(HVS3) if r != hv]
        return [*tunnels, *(vm_port(f"{n}-{hv}", i + 1, mac, ip, net)
                            for i, (n, mac, ip, net) in enumerate(vms))]

    h.run(*(report(hv, *ports_of(hv, [])) for hv in HVS3))
    for dpid in (1, 2, 3):
        h.switch_up(dpid)
    h.later(1.0)
    for hv, vms, tep in changes:
        teps[hv] = tep or teps[hv]
        h.run(report(hv, *ports_of(hv, vms), tep=teps[hv]))
        for dpid, rec in h.engine.reconcilers.items():
            assert rec.desired is not None
            assert set(rec.desired.values()) == compile_switch(POLICY, h.engine.directory,
                                                               f"hv{dpid}")
            assert rec.in_sync and set(h.switches[dpid].table) == set(rec.desired)


def test_a_late_answer_on_a_replaced_connection_is_ignored() -> None:
    h = converged()
    old = h.switches[1]
    new = FakeChannel(dpid=1)
    h.engine.handle_batch([SwitchUp(new.dp)])  # reconnected; its dump not answered yet
    rec = h.engine.reconcilers[1]
    assert rec.awaiting is not None
    stale = types.SimpleNamespace(xid=rec.awaiting[1], flags=0, body=[], datapath=old.dp)
    h.engine.handle_batch([SwitchMessage(1, MessageKind.FLOW_STATS, stale)])
    assert rec.phase.value == "dumping"  # only the new connection's answer counts


def test_a_reconnecting_switch_closes_its_old_connection() -> None:
    h = converged()
    closed: list[str] = []
    h.switches[1].dp.close = closed.append  # what ryu_dove.openflow.connection connections have
    h.engine.handle_batch([SwitchUp(FakeChannel(dpid=1).dp)])
    assert closed == ["replaced by a new connection from the same switch"]


def test_a_hypervisor_reporting_a_taken_tep_is_ignored_until_it_changes(caplog) -> None:
    h = converged()
    before = {dpid: dict(sw.table) for dpid, sw in h.switches.items()}
    h.run(report("hv3", vm_port("c1", 1, "02:00:00:00:00:31", "198.51.100.31"),
                 tep=TEPS["hv1"]))
    assert h.engine.directory.hypervisor("hv3") is None
    assert "OVSDB tcp:hv3 claiming to be hv3 refused: TEP 192.0.2.1 is held by hypervisor hv1" \
        in caplog.text
    assert {dpid: sw.table for dpid, sw in h.switches.items()} == before  # nothing disturbed
    h.run(report("hv3", vm_port("c1", 1, "02:00:00:00:00:31", "198.51.100.31")))
    hv3 = h.engine.directory.hypervisor("hv3")
    assert hv3 is not None and hv3.tep_ip == TEPS["hv3"]
