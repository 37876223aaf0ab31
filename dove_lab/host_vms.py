"""Demo VMs on a real hypervisor (a Vagrant VM): the VMs a topology file puts on this host,
as network namespaces plugged into the local br-int, the lab's way (dove_lab.nodes).

Used by vagrant/provision-hypervisor.sh (`dove-lab plug-host`); CI runs that script inside
the one-machine lab's hypervisor namespaces, where "this host" is the namespace.
Idempotent: a VM whose namespace exists is left as it is.
"""

from __future__ import annotations

from dove_lab import nodes, vms
from dove_lab.state import VmState
from dove_lab.topology import load_topology
from ovsdb_agent.vswitch import VSwitch
from ryu_dove.policy import load_policy


def plug_host(topology_path: str, policy_paths: list[str], hypervisor: str, db: str,
              prefix: str = "dove-vm-") -> list[VmState]:
    """Create and plug this hypervisor's VMs; returns those created now."""
    policy = load_policy(policy_paths)
    topology = load_topology(topology_path, policy)
    existing = set(nodes.netns_list())
    made: list[VmState] = []
    with VSwitch(db) as vswitch:
        for spec in topology.vms:
            if spec.hypervisor != hypervisor:
                continue
            vm = vms.vm_state(spec, policy, prefix + spec.name)
            if vm.netns in existing:
                continue
            nodes.create_vm(vm, "", vswitch, nodes.vif_ids(vm))
            made.append(vm)
    return made
