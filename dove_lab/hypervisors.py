"""A lab's hypervisors: their addresses and OVS, and the underlay tunnels between them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from dove_lab import baseline, nodes
from dove_lab.errors import LabError
from dove_lab.naming import Addressing
from dove_lab.ovs_instance import OvsInstance, pidfile_pid
from dove_lab.state import HypervisorState, LabState
from dove_lab.topology import MAX_HYPERVISORS
from ovsdb_agent.sockets import TlsFiles


def ovs_of(hv: HypervisorState) -> OvsInstance:
    return OvsInstance(hv.netns, Path(hv.ovs_dir))


def ovs_running(hv: HypervisorState) -> bool:
    ovs = ovs_of(hv)
    return all(pidfile_pid(ovs.pidfile(d)) is not None for d in ("ovsdb-server", "ovs-vswitchd"))


def check_new(state: LabState, name: str) -> None:
    """Raise LabError if the lab cannot take a hypervisor of that (well-formed) name."""
    if name in state.hypervisors or name in state.vms:
        raise LabError(f"lab {state.name!r} has a node named {name!r} already")
    if len(state.hypervisors) >= MAX_HYPERVISORS:
        raise LabError(f"a lab holds at most {MAX_HYPERVISORS} hypervisors")


def add(state: LabState, name: str) -> HypervisorState:
    """Record a hypervisor in the lab's state, then create its namespace and OVS."""
    addr = Addressing(state.slot)
    index = state.free_hv_index()
    hv = HypervisorState(name=name, index=index, netns=state.names.netns(name),
                         tep_ip=addr.tep_ip(index), mgmt_ip=addr.hv_mgmt_ip(index),
                         ovs_dir=str(state.dir / "hv" / name))
    state.hypervisors[name] = hv
    state.save()
    nodes.create_hypervisor(state.names, addr, hv, controller=state.controller,
                            ssl=_certificate(state, name))
    return hv


def _certificate(state: LabState, name: str) -> TlsFiles | None:
    """The hypervisor's key and certificate (named after it), and the controller's CA."""
    if not (state.controller and state.tls):
        return None
    pki = state.pki.ensure()
    pair = pki.issue(name, "switch")
    return TlsFiles(str(pair.key), str(pair.cert), str(pki.controller_ca))


def remove(state: LabState, hv: HypervisorState) -> list[str]:
    """Remove a hypervisor, its OVS directory and the VMs on it from the host and the state;
    returns those VMs."""
    gone = [vm.name for vm in state.vms.values() if vm.hypervisor == hv.name]
    for vm_name in gone:
        nodes.delete_vm(state.vms.pop(vm_name), None)
    nodes.delete_hypervisor(state.names, hv)
    # Its database too: a hypervisor added again under this name must not find the old VM
    # ports, identity and tunnels in it.
    if os.path.isdir(hv.ovs_dir):
        shutil.rmtree(hv.ovs_dir)
    del state.hypervisors[hv.name]
    state.save()
    return gone


def wire_tunnels(state: LabState) -> None:
    """Underlay ARP for every TEP, and in baseline mode the full tunnel mesh."""
    for hv in state.hypervisors.values():
        peers = [p for p in state.hypervisors.values() if p.name != hv.name]
        ovs = ovs_of(hv)
        nodes.warm_tunnel_neighbours(ovs, [(p.tep_ip, Addressing.tep_mac(p.index))
                                           for p in peers])
        if not state.controller:
            baseline.program_mesh(ovs, {p.name: p.tep_ip for p in peers})
