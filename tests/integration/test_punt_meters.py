"""Every switch gets the meters punts to the controller go through, on real OVS, and keeps
them across a controller restart (modified, never deleted: docs/research/punts-ovs-3.1.md)."""

from __future__ import annotations

from pathlib import Path

from ovsdb_agent import contract
from ryu_dove.openflow.reconciler import METERS, PUNT_METER
from tests.integration.helpers import PAIR, wait_in_sync


def meters(lab, hv: str) -> str:
    ovs = lab.ovs(lab.state().hypervisors[hv])
    return ovs.ofctl("dump-meters", ovs.bridge_mgmt(contract.INTEGRATION_BRIDGE))


def test_punt_meters_are_on_every_switch_and_survive_a_controller_restart(
        make_lab, write_topology):
    lab = make_lab(write_topology(PAIR), controller=True)
    wait_in_sync(lab)
    rate, burst = METERS[PUNT_METER]
    for _ in range(2):
        for hv in ("hv1", "hv2"):
            text = meters(lab, hv)
            assert f"meter={PUNT_METER} pktps burst" in text, text
            assert f"rate={rate} burst_size={burst}" in text, text
            assert "meter=controller pktps burst" in text, text
        lab.controller_stop()
        lab.controller_start()  # returns once every switch is in sync again
    log = Path(lab.status()["controller"]["log"]).read_text()
    assert "refused meter" not in log
