"""The Vagrant lab's hypervisor provisioning, run for real (issue 14): no VM boots on CI, so
vagrant/provision-hypervisor.sh runs inside the one-machine lab's hypervisor namespaces
(their own OVS, the lab's controller) with vagrant/topology.yaml, as `vagrant up` runs it
in each hypervisor VM; the demo VMs it plugs then reach whom the policy says."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from dove_lab.naming import LabNames
from tests.integration.helpers import api_get, wait_for, wait_in_sync

ROOT = Path(__file__).resolve().parents[2]
TWO_EMPTY = "hypervisors: [hv1, hv2]\nvms: []\n"


def vm_ping(netns: str, ip: str, timeout: int = 3) -> bool:
    return subprocess.run(["ip", "netns", "exec", netns, "ping", "-n", "-q", "-c", "1", "-i",
                           "0.2", "-w", str(timeout), ip], capture_output=True,
                          timeout=timeout + 5).returncode == 0


def test_provisioning_joins_the_hypervisors_and_plugs_the_demo_vms(make_lab, write_topology):
    lab = make_lab(write_topology(TWO_EMPTY), controller=True, tls=False)
    wait_in_sync(lab)
    state = lab.state()
    prefix = f"{LabNames(lab.name).netns_prefix}vg-"  # removed with the lab
    controller = lab.status()["controller"]["address"]
    for name, hv in sorted(state.hypervisors.items()):
        done = subprocess.run(
            # nsenter, not `ip netns exec`: that one also gives the script a mount namespace
            # of its own, and the VM namespaces it makes would vanish with it.
            ["nsenter", f"--net=/run/netns/{hv.netns}", "bash", str(ROOT / "vagrant" /
             "provision-hypervisor.sh"), name, hv.tep_ip, controller,
             str(ROOT / "vagrant" / "topology.yaml"), str(ROOT / "policies" / "example.yaml"),
             "--db", lab.ovs(hv).db, "--datapath-type", "netdev"],
            capture_output=True, text=True, timeout=600, env={**os.environ,
                                                               "DOVE_VM_PREFIX": prefix})
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert f"provision-hypervisor: {name} joined" in done.stdout
    wait_for(lambda: {e["iface_id"] for e in api_get(lab, "endpoints")} ==
             {"vm1", "vm2", "vm3", "vm4"}, 15, "the four demo VMs bound")
    wait_in_sync(lab)
    vm1, vm4 = prefix + "vm1", prefix + "vm4"
    assert vm_ping(vm1, "198.51.100.11")  # acme/web across the two hypervisors
    assert vm_ping(vm1, "198.51.100.70")  # acme web -> db, routed by the example's rule
    assert not vm_ping(vm4, "198.51.100.11", timeout=1)  # globex has no .11
