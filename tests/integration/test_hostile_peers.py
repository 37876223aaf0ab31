"""Hostile peers against a real lab: a rogue ovsdb-server that reaches the controller's
OVSDB port and claims a running hypervisor's name or TEP is refused, shown in
/v1/refused, and changes nothing on any switch; tenant traffic keeps flowing."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from dove_lab.lab import Lab
from dove_lab.ovs_instance import SCHEMA
from dove_lab.probe import Fate
from ovsdb_agent import contract
from tests.integration.helpers import api_get, fate, wait_for, wait_in_sync
from tests.integration.test_controller_lifecycle import TWO_TENANTS, installed

OVSDB_PORT = 6640


class Rogue:
    """An ovsdb-server of our own in the root namespace, managed by the lab's controller."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.db = f"unix:{root / 'db.sock'}"
        self.pidfile = root / "ovsdb-server.pid"
        subprocess.run(["ovsdb-tool", "create", str(root / "conf.db"), SCHEMA], check=True)
        subprocess.run(["ovsdb-server", str(root / "conf.db"), f"--remote=punix:{root}/db.sock",
                        "--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
                        f"--pidfile={self.pidfile}", f"--log-file={root / 'ovsdb.log'}",
                        f"--unixctl={root / 'ovsdb.ctl'}", "--detach"], check=True)
        self.vsctl("--no-wait", "init")

    def vsctl(self, *args: str) -> None:
        subprocess.run(["ovs-vsctl", f"--db={self.db}", *args], check=True,
                       capture_output=True)

    def claim(self, name: str, tep: str, controller_ip: str) -> None:
        self.vsctl("--no-wait", "set", "Open_vSwitch", ".",
                   f"external_ids:{contract.HYPERVISOR}={name}",
                   f"external_ids:{contract.TEP_IP}={tep}")
        self.vsctl("--no-wait", "set-manager", f"tcp:{controller_ip}:{OVSDB_PORT}")

    def stop(self) -> None:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
            os.kill(int(self.pidfile.read_text()), signal.SIGTERM)


@pytest.fixture
def rogue(tmp_path: Path) -> Iterator[Rogue]:
    peer = Rogue(tmp_path)
    yield peer
    peer.stop()


def snapshot(lab: Lab) -> dict[str, object]:
    return {"flows": {hv: set(installed(lab, hv)) for hv in ("hv1", "hv2")},
            "endpoints": api_get(lab, "endpoints"), "tunnels": api_get(lab, "tunnels")}


@pytest.mark.parametrize("claim, reason", [
    ("name", "hypervisor hv2 reports over another connection"),
    ("tep", "TEP {tep} is held by hypervisor hv2"),
])
def test_a_rogue_ovsdb_peer_claiming_a_hypervisor_changes_nothing(make_lab, write_topology,
                                                                  rogue: Rogue, claim: str,
                                                                  reason: str) -> None:
    lab = make_lab(write_topology(TWO_TENANTS), controller=True)
    wait_in_sync(lab)
    assert fate(lab, "a1", "a2") is Fate.REACHES
    before = snapshot(lab)
    tep = next(h["tep_ip"] for h in api_get(lab, "hypervisors") if h["name"] == "hv2")
    controller_ip = lab.status()["controller"]["address"]
    rogue.claim("hv2" if claim == "name" else "hv9", str(tep), str(controller_ip))
    expected = reason.format(tep=tep)
    wait_for(lambda: any(expected in str(r["reason"]) for r in api_get(lab, "refused")), 15,
             "the rogue's claim to be refused")
    wait_in_sync(lab)  # had the claim changed any desired flow, it would be installed now
    assert snapshot(lab) == before
    assert fate(lab, "a1", "a2") is Fate.REACHES and fate(lab, "g1", "g2") is Fate.REACHES
    rogue.stop()
    wait_for(lambda: not any(expected in str(r["reason"]) for r in api_get(lab, "refused")),
             15, "the refusal to go with the rogue's connection")
