"""First claim wins: a report that claims another hypervisor's name, TEP or datapath id, or
that is not well formed, is refused, shown, and changes nothing (ryu_dove.engine.claims)."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from ryu_dove.events import OvsdbGone, OvsdbReport, SwitchUp
from ryu_dove.northbound import views
from tests.fakes.of_channel import FakeChannel
from tests.unit.test_engine import A1, TEPS, converged, report, tunnel_port, vm_port

C1 = vm_port("c1", 1, "02:00:00:00:00:31", "198.51.100.31")


def claim(**changes: object) -> OvsdbReport:
    """hv3's report (a free name, TEP and datapath id) with some fields changed."""
    return OvsdbReport(replace(report("hv3", C1).report, **changes))


def tables(h) -> dict[int, dict]:
    return {dpid: dict(sw.table) for dpid, sw in h.switches.items()}


def refused(h) -> list[dict]:
    return views.build(h.engine, "refused")["refused"]


def test_a_second_connection_claiming_a_name_changes_nothing_until_the_first_ends() -> None:
    h = converged()
    before = tables(h)
    rogue = report("hv1", C1, conn="tcp:203.0.113.99:4000")  # hv1's name, TEP and dpid
    h.run(rogue)
    assert tables(h) == before
    assert h.engine.directory.endpoints_on("hv1")[0].port == "vif-a1"
    [r] = refused(h)
    assert r["hypervisor"] == "hv1" and r["port"] == ""
    assert r["reason"] == ("OVSDB connection tcp:203.0.113.99:4000: hypervisor hv1 reports "
                           "over another connection (tcp:hv1)")
    h.run(OvsdbGone("tcp:hv1"))  # the first connection ended: the waiting one takes over
    assert [e.port for e in h.engine.directory.endpoints_on("hv1")] == ["vif-c1"]
    assert refused(h) == []


def test_another_hypervisors_datapath_id_is_refused() -> None:
    h = converged()
    before = tables(h)
    h.run(claim(dpid=1))  # a free name and TEP, but hv1's br-int
    assert h.engine.directory.hypervisor("hv3") is None
    assert tables(h)[1] == before[1]
    assert any("datapath id 0000000000000001 is held by hypervisor hv1" in r["reason"]
               for r in refused(h))


@pytest.mark.parametrize("tep, why", [
    ("0xc0.0.2.9", "a TEP is an IPv4 or IPv6 address"),
    ("192.0.2.9 ", "a TEP is an IPv4 or IPv6 address"),
    ("::ffff:192.0.2.1", "a TEP is written canonically (::ffff:c000:201)"),
    ("::ffff:c000:201", "a TEP is not an IPv4-mapped IPv6 address (write 192.0.2.1)"),
    ("224.0.0.5", "a TEP is a unicast address a tunnel can reach"),
    ("127.0.0.1", "a TEP is a unicast address a tunnel can reach"),
])
def test_a_tep_that_is_not_one_canonical_unicast_address_is_refused(tep: str, why: str) -> None:
    h = converged()
    before = tables(h)
    h.run(report("hv3", C1, tep=tep))
    assert h.engine.directory.hypervisor("hv3") is None and tables(h) == before
    [r] = refused(h)
    assert r["reason"] == f"OVSDB connection tcp:hv3: {why}"
    h.run(report("hv3", C1))  # fixed: taken, and the refusal is gone
    assert h.engine.directory.hypervisor("hv3") is not None and refused(h) == []


@pytest.mark.parametrize("name", ["hv1\nERROR forged", "\x1b[2Jhv", "-hv", "h" * 64, ""])
def test_a_name_outside_the_safe_charset_is_refused_and_shown_escaped(name: str,
                                                                       caplog) -> None:
    h = converged()
    h.run(claim(name=name))
    assert len(h.engine.directory.hypervisors()) == 2
    [r] = refused(h)
    assert r["hypervisor"].isprintable() and r["hypervisor"].isascii()
    assert all(line.startswith(("DEBUG", "INFO", "WARNING", "ERROR"))
               for line in caplog.text.splitlines())


def test_a_port_name_with_control_characters_is_logged_escaped(caplog) -> None:
    caplog.set_level(logging.INFO)
    h = converged()
    evil = vm_port("e1", 2, "02:00:00:00:00:41", "198.51.100.41")
    evil = replace(evil, name="vif\nCRITICAL forged")
    h.run(report("hv1", A1, evil))
    assert "vif\\nCRITICAL forged" in caplog.text
    assert all(line.startswith(("DEBUG", "INFO", "WARNING", "ERROR"))
               for line in caplog.text.splitlines())


def test_teps_of_the_lab_are_accepted() -> None:
    assert set(TEPS.values()) >= {"192.0.2.1", "192.0.2.2"}


@pytest.mark.parametrize("ofport, mac, ips, why", [
    (5, "00:00:00:00:00:00", "198.51.100.41", "attached-mac '00:00:00:00:00:00' is not a "
                                              "unicast MAC"),
    (0xFFFFFFFE, "02:00:00:00:00:41", "198.51.100.41",
     "ofport 4294967294 is not a port a VM can be on"),  # LOCAL
    (0xFFFFFFFD, "02:00:00:00:00:41", "198.51.100.41",
     "ofport 4294967293 is not a port a VM can be on"),  # CONTROLLER
    (5, "02:00:00:00:00:41", ",".join(f"198.51.100.{i}" for i in range(1, 70)),
     "dove-ips: more than 64 addresses"),
])
def test_absurd_bindings_are_refused_with_the_reason(ofport: int, mac: str, ips: str,
                                                     why: str) -> None:
    h = converged()
    before = tables(h)
    bad = vm_port("bad", ofport, mac, ips)
    h.run(report("hv1", A1, tunnel_port("hv2", 9), bad))
    assert [r["reason"] for r in refused(h)] == [why]
    assert tables(h) == before


def test_a_connection_that_reports_another_name_releases_the_first() -> None:
    h = converged()
    h.run(claim(conn="tcp:x"))  # hv3 over tcp:x
    h.run(claim(conn="tcp:x", name="hv4", tep_ip="192.0.2.44", dpid=44))  # now says hv4
    h.run(claim(conn="tcp:y"))  # hv3 again, from a new connection: nobody holds its name
    assert h.engine.fleet.ovsdb_connected("hv3")
    assert [r for r in refused(h) if r["port"] == ""] == []  # no report refused


def test_a_report_whose_certificate_names_another_hypervisor_is_refused() -> None:
    h = converged()
    before = tables(h)
    h.run(claim(identity="hv9"))  # hv3's report, over a connection certified as hv9
    assert h.engine.directory.hypervisor("hv3") is None and tables(h) == before
    [r] = refused(h)
    assert r["reason"].endswith("its certificate is for hv9, not hv3")
    h.run(claim(identity="hv3", conn="tcp:hv3b"))
    assert h.engine.directory.hypervisor("hv3") is not None


def test_a_switch_certified_as_another_hypervisor_cannot_take_a_datapath_id() -> None:
    h = converged()
    before = tables(h)
    impostor = FakeChannel(dpid=1, identity="hv2")  # hv2's certificate, hv1's datapath id
    h.run(SwitchUp(impostor.dp))
    assert impostor.closed == "its certificate is for hv2, but datapath id 0000000000000001 " \
                              "is hv1's"
    assert h.engine.reconcilers[1].dp is not impostor.dp  # hv1's own connection stays
    assert tables(h) == before


def test_a_switch_connected_before_its_hypervisor_reported_is_checked_then() -> None:
    h = converged()
    early = FakeChannel(dpid=3, identity="hv9")  # nobody has reported datapath id 3 yet
    h.run(SwitchUp(early.dp))
    assert early.closed is None
    h.run(claim(identity="hv3"))  # hv3 reports it: the switch's certificate is not hv3's
    assert early.closed is not None and 3 not in h.engine.reconcilers


def test_the_number_of_hypervisors_known_is_bounded(monkeypatch) -> None:
    monkeypatch.setattr("ryu_dove.engine.claims.MAX_HYPERVISORS", 2)
    h = converged()  # hv1 and hv2: full
    h.run(claim())
    assert h.engine.directory.hypervisor("hv3") is None
    [r] = refused(h)
    assert "knows 2 hypervisors already, the most it keeps" in r["reason"]
    h.run(report("hv2", vm_port("a2", 5, "02:00:00:00:00:02", "198.51.100.11")))
    assert h.engine.directory.hypervisor("hv2").tep_ip == TEPS["hv2"]  # known ones go on
