"""dove-lab partition/heal, del-hypervisor's leave, and what up and down wait for: real labs."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dove_lab.controller_watch import OFP_PORT
from dove_lab.lab import Lab, LabError
from ovsdb_agent import contract
from ovsdb_agent.vswitch import VSwitch
from tests.integration.helpers import api_get, leftovers, wait_for

TWO_HVS = """
hypervisors: [hv1, hv2]
vms:
  - {name: a1, hypervisor: hv1, network: acme/web, ip: 198.51.100.10}
  - {name: a2, hypervisor: hv2, network: acme/web, ip: 198.51.100.11}
"""
PORTS = {"openflow": OFP_PORT, "ovsdb": contract.OVSDB_PORT}

# Prints "connected", "refused", "timeout" or "unreachable" (the hypervisor's own kernel gave
# up on ARP: its link is down). A partition must never look like a RST from the other end.
_CONNECT = """
import errno, socket, sys
s = socket.socket()
s.settimeout(float(sys.argv[3]))
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print("connected")
except ConnectionRefusedError:
    print("refused")
except (socket.timeout, TimeoutError):
    print("timeout")
except OSError as exc:
    print("unreachable" if exc.errno == errno.EHOSTUNREACH else repr(exc))
"""
CUT = {"timeout", "unreachable"}


def connect(netns: str, ip: str, port: int, timeout: float = 1.0) -> str:
    out = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", _CONNECT, ip,
                          str(port), str(timeout)],
                         capture_output=True, text=True, timeout=timeout + 10)
    return out.stdout.strip() or out.stderr.strip()


def reachable(lab: Lab, hv: str) -> dict[str, str]:
    """What a TCP connect from the hypervisor's namespace to each controller port gets."""
    status = lab.status()
    netns = status["hypervisors"][hv]["netns"]
    return {ch: connect(netns, status["controller"]["address"], port)
            for ch, port in PORTS.items()}


@pytest.fixture
def baseline_lab(make_lab, write_topology) -> Iterator[Lab]:
    """A lab without a controller, with listeners of our own on the controller's ports: a
    connect there succeeds exactly when nothing cuts it."""
    lab = make_lab(write_topology(TWO_HVS))
    listeners = []
    try:
        for port in PORTS.values():
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((lab.status()["controller"]["address"], port))
            s.listen(64)  # the kernel completes handshakes without accept()
            listeners.append(s)
        yield lab
    finally:
        for s in listeners:
            s.close()


def test_a_cut_channel_is_silent_both_ways_and_heal_restores_it(baseline_lab):
    lab = baseline_lab
    open_ = {"openflow": "connected", "ovsdb": "connected"}
    assert reachable(lab, "hv1") == open_
    assert lab.partition("hv1", "openflow") == ["openflow"]
    assert reachable(lab, "hv1") == {"openflow": "timeout", "ovsdb": "connected"}
    assert reachable(lab, "hv2") == open_  # only hv1 is cut
    assert lab.status()["hypervisors"]["hv1"]["partitioned"] == ["openflow"]
    assert lab.partition("hv1", "openflow") == []  # cut already
    assert lab.heal("hv1", "ovsdb") == []  # not cut
    assert lab.heal("hv1", "openflow") == ["openflow"]
    assert reachable(lab, "hv1") == open_
    assert lab.status()["hypervisors"]["hv1"]["partitioned"] == []
    netns = lab.status()["hypervisors"]["hv1"]["netns"]
    tables = subprocess.run(["ip", "netns", "exec", netns, "nft", "list", "tables"],
                            capture_output=True, text=True, check=True).stdout
    assert "dove_lab" not in tables  # healed: the table goes with its last rule


def test_all_takes_the_management_link_down_and_each_cut_heals_on_its_own(baseline_lab):
    lab = baseline_lab
    assert lab.partition("hv2", "ovsdb") == ["ovsdb"]
    assert lab.partition("hv2") == ["all"]
    assert lab.status()["hypervisors"]["hv2"]["partitioned"] == ["all", "ovsdb"]
    assert set(reachable(lab, "hv2").values()) <= CUT
    assert lab.heal("hv2", "ovsdb") == ["ovsdb"]
    assert set(reachable(lab, "hv2").values()) <= CUT  # the link is still down
    assert lab.partition("hv2", "openflow") == ["openflow"]
    assert lab.heal("hv2") == ["all"]  # the link only: openflow stays cut
    wait_for(lambda: reachable(lab, "hv2")["ovsdb"] == "connected", 10,
             "hv2 to reach the controller's OVSDB port again")
    assert reachable(lab, "hv2")["openflow"] == "timeout"
    assert lab.heal("hv2") == []  # the link is up already
    assert lab.heal("hv2", "openflow") == ["openflow"]
    assert reachable(lab, "hv2") == {"openflow": "connected", "ovsdb": "connected"}
    assert lab.status()["hypervisors"]["hv2"]["partitioned"] == []
    with pytest.raises(LabError, match="no hypervisor 'hv9'"):
        lab.partition("hv9")
    with pytest.raises(LabError, match="unknown channel 'http'"):
        lab.heal("hv1", "http")


def test_del_hypervisor_leaves_the_controller_and_takes_its_database(make_lab,
                                                                     write_topology):
    lab = make_lab(write_topology(TWO_HVS), controller=True)
    # `up` returned: every switch holds its flows and the controller says so.
    assert all(h["in_sync"] and h["openflow"] and h["ovsdb"]
               for h in api_get(lab, "hypervisors"))
    controller = api_get(lab, "controller")
    assert isinstance(controller, dict) and controller["synchronised"] is True
    ovs_dir = Path(lab.state().hypervisors["hv2"].ovs_dir)
    assert (ovs_dir / "conf.db").exists()
    assert lab.del_hypervisor("hv2") == ["a2"]
    # It left (dove-join --leave), so the controller forgot it before del_hypervisor returned.
    assert [h["name"] for h in api_get(lab, "hypervisors")] == ["hv1"]
    assert not ovs_dir.exists()
    hv = lab.add_hypervisor("hv2")
    with VSwitch(lab.ovs(hv).db) as vswitch:
        vm_ports = [i["name"] for i in vswitch.interfaces()
                    if contract.IFACE_ID in i["external_ids"]]
    assert vm_ports == []  # a fresh database: the old VM port did not come back
    lab.down()
    assert leftovers(lab.name) == []  # at once: down waited for every process it stopped
