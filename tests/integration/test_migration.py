"""Live migration on real OVS (issue 13): `dove-lab migrate` plugs the destination port while
the VM runs at the source, switches the VM over and lets it announce itself; the move takes
effect when it speaks there. A peer's 20 ms ping stream loses at most one packet, every peer
reaches the VM afterwards, and no flow anywhere still sends it to the old hypervisor; a VM
whose address was learned keeps it."""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from dove_lab.lab import Lab
from dove_lab.probe import ping
from ryu_dove.tunnel_ids import remote_key
from tests.integration.helpers import api_get, wait_in_sync

TRIO = """
hypervisors: [hv1, hv2, hv3]
vms:
  - {name: m1, hypervisor: hv1, network: acme/web, ip: 198.51.100.10, learn: LEARN}
  - {name: p2, hypervisor: hv2, network: acme/web, ip: 198.51.100.11}
  - {name: p3, hypervisor: hv3, network: acme/web, ip: 198.51.100.12}
  - {name: d1, hypervisor: hv2, network: acme/db, ip: 198.51.100.70}
"""
STREAM_INTERVAL_S = 0.02


def stream(lab: Lab, src: str, dst_ip: str) -> subprocess.Popen[str]:
    """A ping every 20 ms until interrupted (SIGINT: ping prints its summary)."""
    netns = lab.state().vms[src].netns
    return subprocess.Popen(["ip", "netns", "exec", netns, "ping", "-n", "-q", "-i",
                             str(STREAM_INTERVAL_S), dst_ip], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def lost(proc: subprocess.Popen[str]) -> tuple[int, int]:
    """(sent, lost) of a stopped stream."""
    proc.send_signal(2)
    out, _ = proc.communicate(timeout=10)
    m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    assert m, out
    return int(m[1]), int(m[1]) - int(m[2])


def flows_to(lab: Lab, hv: str, mac: str, old_tep: str) -> list[str]:
    """hv's flows that name the VM's MAC and send to the old hypervisor."""
    state = lab.state()
    text = lab.ovs(state.hypervisors[hv]).ofctl("dump-flows", "br-int")
    key = f"{remote_key(old_tep):#x}"
    return [line for line in text.splitlines() if mac in line and key in line]


@pytest.mark.parametrize("learn", [False, True], ids=["declared", "learned"])
def test_a_live_migration_loses_at_most_one_packet_of_a_20ms_stream(make_lab, write_topology,
                                                                     learn):
    lab = make_lab(write_topology(TRIO.replace("LEARN", str(learn).lower())), controller=True)
    wait_in_sync(lab)
    state = lab.state()
    vm, old_tep = state.vms["m1"], state.hypervisors["hv1"].tep_ip
    if learn:  # it speaks first: its address is learned, and must move with it
        assert ping(vm, state.vms["p2"].ip, timeout=3.0)
    for peer in ("p2", "p3", "d1"):
        assert ping(state.vms[peer], vm.ip, timeout=3.0) or peer == "d1"
    streams = {peer: stream(lab, peer, vm.ip) for peer in ("p2", "p3")}
    try:
        time.sleep(1.0)
        waits = lab.migrate_vm("m1", "hv3")
        time.sleep(1.0)
    finally:
        results = {peer: lost(proc) for peer, proc in streams.items()}
    for peer, (sent, missing) in results.items():
        assert sent > 50 and missing <= 1, (peer, sent, missing, waits)
    moved = lab.state().vms["m1"]
    assert moved.hypervisor == "hv3"
    (ep,) = [e for e in api_get(lab, "endpoints") if e["iface_id"] == "m1"]
    assert (ep["hypervisor"], ep["standby"], ep["ips"]) == ("hv3", False, [vm.ip])
    for peer in ("p2", "p3"):
        assert ping(lab.state().vms[peer], vm.ip, timeout=3.0)
    wait_in_sync(lab)
    for hv in ("hv1", "hv2", "hv3"):
        assert flows_to(lab, hv, vm.mac, old_tep) == [], hv
