"""Outages, leaving, expiry and restarts: what a hypervisor keeps when it cannot be heard."""

from __future__ import annotations

import dataclasses

from ovsdb_agent.reports import TunnelSpec
from ryu_dove.engine.saved_state import SavedState
from ryu_dove.events import OvsdbGone, OvsdbReport, SwitchDown
from ryu_dove.northbound import views
from tests.fakes.of_channel import FakeChannel
from tests.unit.test_engine import (
    A1,
    A2,
    EXPIRY_S,
    Harness,
    converged,
    report,
    tunnel_port,
)


def cut(h: Harness, dpid: int = 2, conn: str = "tcp:hv2") -> FakeChannel:
    """Both of a hypervisor's connections end, as in a partition."""
    sw = h.switches.pop(dpid)
    h.run(SwitchDown(sw.dp), OvsdbGone(conn))
    return sw


def flows_of(h: Harness) -> dict[int, dict]:
    """Each switch's table; forgets what was sent so far, so flow_mods_sent() is news."""
    for sw in h.switches.values():
        sw.sent.clear()
    return {dpid: dict(sw.table) for dpid, sw in h.switches.items()}


def test_an_outage_shorter_than_the_expiry_changes_nothing_anywhere() -> None:
    h = converged()
    before, tunnels = flows_of(h), dict(h.tunnels)
    cut(h)
    h.later(EXPIRY_S - 10)
    assert h.engine.directory.hypervisor("hv2") is not None
    assert {e.hypervisor for e in h.engine.directory.endpoints()} == {"hv1", "hv2"}
    assert flows_of(h)[1] == before[1] and h.switches[1].flow_mods_sent() == []
    assert h.tunnels == tunnels


def test_expiry_counts_from_the_last_time_the_hypervisor_was_heard() -> None:
    h = converged()
    sw2 = cut(h)
    h.later(EXPIRY_S - 100)
    h.switch_up(2, FakeChannel(dpid=2, table=dict(sw2.table)))  # back briefly
    cut(h)
    h.later(EXPIRY_S - 10)
    assert h.engine.directory.hypervisor("hv2") is not None  # the clock restarted
    h.later(20)
    assert h.engine.directory.hypervisor("hv2") is None
    assert h.tunnels["hv1"] == {}
    remote = [f for f in h.engine.reconcilers[1].desired.values()
              if "02:00:00:00:00:02" in f.describe()]
    assert remote == []  # hv1 no longer forwards to a2


def test_a_connected_switch_keeps_its_hypervisor_past_the_expiry() -> None:
    h = converged()
    h.run(OvsdbGone("tcp:hv2"))  # OVSDB down for good, OpenFlow up
    h.later(3 * EXPIRY_S)
    assert h.engine.directory.hypervisor("hv2") is not None


def test_expiry_zero_means_never() -> None:
    h = converged()
    h.engine.timing = dataclasses.replace(h.engine.timing, expiry_s=0)
    cut(h)
    h.later(100 * EXPIRY_S)
    assert h.engine.directory.hypervisor("hv2") is not None


def test_a_hypervisor_that_leaves_is_removed_at_once() -> None:
    h = converged()
    gone = OvsdbReport(dataclasses.replace(report("hv2", A2).report, name=None, tep_ip=None))
    h.run(gone)
    assert h.engine.directory.hypervisor("hv2") is None
    assert h.tunnels["hv1"] == {}
    assert h.engine.fleet.claims.refusals() == []  # leaving is not a refused report


def test_an_unjoined_report_from_another_connection_removes_no_one() -> None:
    h = converged()
    stranger = dataclasses.replace(report("hv2", A2).report, conn="tcp:evil", name=None)
    h.run(OvsdbReport(stranger))
    assert h.engine.directory.hypervisor("hv2") is not None


def test_every_reconnection_order_changes_no_flow() -> None:
    orders = {
        "ovsdb first": lambda h, old: (h.run(report("hv2", A2, tunnel_port("hv1", 9),
                                                    conn="tcp:hv2b")),
                                       h.switch_up(2, FakeChannel(dpid=2, table=old))),
        "openflow first": lambda h, old: (h.switch_up(2, FakeChannel(dpid=2, table=old)),
                                          h.run(report("hv2", A2, tunnel_port("hv1", 9),
                                                       conn="tcp:hv2b"))),
    }
    for order, heal in orders.items():
        h = converged()
        before = flows_of(h)
        old = dict(cut(h).table)
        h.later(120)
        heal(h, old)
        h.later(1)
        assert h.engine.directory.hypervisor("hv2") is not None, order
        assert all(sw.flow_mods_sent() == [] for sw in h.switches.values()), order
        assert flows_of(h) == before, order


def test_a_stale_connection_ending_after_the_new_one_changes_nothing() -> None:
    h = converged()
    flows_of(h)
    old = h.switches[2]
    h.switch_up(2, FakeChannel(dpid=2, table=dict(old.table)))  # reconnected first
    h.run(SwitchDown(old.dp), OvsdbGone("tcp:hv2"))  # then the old ones are reset
    h.later(EXPIRY_S * 2)
    assert h.engine.directory.hypervisor("hv2") is not None  # its switch is connected
    assert all(sw.flow_mods_sent() == [] for sw in h.switches.values())


def test_over_tls_a_new_connection_takes_over_a_stale_one_at_once() -> None:
    h = converged()
    moved = vm_a2_moved = dataclasses.replace(A2, ofport=7)
    fresh = dataclasses.replace(report("hv2", moved, tunnel_port("hv1", 9)).report,
                                conn="ssl:hv2-new", identity="hv2")
    h.run(OvsdbReport(fresh))  # the old connection tcp:hv2 has not been noticed dead
    assert h.engine.directory.by_mac("acme/web", vm_a2_moved.ids()["attached-mac"]).ofport == 7
    h.run(OvsdbGone("tcp:hv2"))  # the stale one ends: hv2 stays connected
    assert h.engine.fleet.ovsdb_connected("hv2")


def test_the_api_shows_who_is_unreachable_and_that_the_fleet_is_not_in_sync() -> None:
    h = converged()
    view = views.build(h.engine)
    assert view["controller"]["synchronised"]
    assert [hv["state"] for hv in view["hypervisors"]] == ["connected", "connected"]
    h.run(OvsdbGone("tcp:hv2"))
    assert views.build(h.engine, "hypervisors")["hypervisors"][1]["state"] == "degraded"
    h.run(SwitchDown(h.switches.pop(2).dp))
    view = views.build(h.engine)
    hv2 = view["hypervisors"][1]
    assert (hv2["state"], hv2["openflow"], hv2["ovsdb"]) == ("unreachable", False, False)
    assert not view["controller"]["synchronised"]
    assert view["controller"]["hypervisors"] == {"connected": 1, "unreachable": 1}


# --- restarts with the saved state ------------------------------------------------------------

def saved_fleet(tmp_path) -> tuple[Harness, SavedState]:
    saved = SavedState(tmp_path)
    saved.prepare()
    h = Harness(saved)
    h.run(report("hv1", A1), report("hv2", A2))
    h.switch_up(1)
    h.switch_up(2)
    h.later(1.0)
    h.run(report("hv1", A1, tunnel_port("hv2", 9)), report("hv2", A2, tunnel_port("hv1", 9)))
    saved.flush()
    return h, saved


def restarted(tmp_path) -> Harness:
    saved = SavedState(tmp_path)
    h = Harness(saved)
    h.engine.restore(saved.load())
    return h


def test_a_restart_keeps_everything_towards_a_hypervisor_it_cannot_reach(tmp_path) -> None:
    before, _ = saved_fleet(tmp_path)
    h = restarted(tmp_path)
    assert h.engine.fleet.stale == {"hv1", "hv2"}
    h.switch_up(1, FakeChannel(dpid=1, table=dict(before.switches[1].table)))
    h.run(report("hv1", A1, tunnel_port("hv2", 9)))
    h.later(60.0)  # hv2 never comes back: past every grace
    assert h.engine.released
    assert h.switches[1].flow_mods_sent() == []  # not one flow towards hv2 removed
    assert h.tunnels["hv1"] == {"dv-c0000202": TunnelSpec("192.0.2.2", "hv2")}
    states = {hv["name"]: hv["state"] for hv in views.build(h.engine, "hypervisors")
              ["hypervisors"]}
    assert states == {"hv1": "connected", "hv2": "stale"}


def test_a_restored_switch_reconnecting_before_its_ovsdb_is_held_until_it_reports(
        tmp_path) -> None:
    before, _ = saved_fleet(tmp_path)
    h = restarted(tmp_path)
    for dpid in (1, 2):
        h.switch_up(dpid, FakeChannel(dpid=dpid, table=dict(before.switches[dpid].table)))
    h.later(40.0)
    assert all(sw.flow_mods_sent() == [] for sw in h.switches.values())
    assert not views.build(h.engine, "controller")["controller"]["synchronised"]
    h.run(report("hv1", A1, tunnel_port("hv2", 9)), report("hv2", A2, tunnel_port("hv1", 9)))
    assert all(sw.flow_mods_sent() == [] for sw in h.switches.values())
    assert all(rec.in_sync for rec in h.engine.reconcilers.values())
    assert views.build(h.engine, "controller")["controller"]["synchronised"]


def test_a_hypervisor_that_left_is_not_restored(tmp_path) -> None:
    h, saved = saved_fleet(tmp_path)
    h.run(OvsdbReport(dataclasses.replace(report("hv2", A2).report, name=None)))
    saved.flush()
    assert sorted(p.name for p in saved.dir.iterdir()) == ["hv1.json"]
    assert {r.report.name for r in saved.load()} == {"hv1"}
