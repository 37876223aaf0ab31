"""A lab's VMs: checked against the lab and the policy, then described for nodes.create_vm."""

from __future__ import annotations

import ipaddress

from dove_lab import nodes
from dove_lab.errors import LabError
from dove_lab.state import LabState, VmState
from dove_lab.topology import VmSpec, node_name_problem
from ryu_dove.policy import Policy


def check_new(state: LabState, spec: VmSpec, policy: Policy) -> None:
    """Raise LabError if the lab cannot take that VM: name, hypervisor, network or address."""
    why = node_name_problem(spec.name)
    net = policy.network(spec.network)
    if why:
        raise LabError(why)
    if spec.name in state.vms or spec.name in state.hypervisors:
        raise LabError(f"lab {state.name!r} has a node named {spec.name!r} already")
    if spec.hypervisor not in state.hypervisors:
        raise LabError(f"no hypervisor {spec.hypervisor!r} in lab {state.name!r}")
    if net is None:
        raise LabError(f"unknown network {spec.network!r} (tenant/network of the policy)")
    why = net.host_problem(spec.ip)
    if why:
        raise LabError(why)
    for other in state.vms.values():
        if other.network == spec.network and other.ip == str(ipaddress.ip_address(spec.ip)):
            raise LabError(f"{spec.ip} is already {other.name}'s address on {spec.network}")


def vm_state(spec: VmSpec, policy: Policy, netns: str) -> VmState:
    """The VM as the lab records it: addresses from its network, in namespace `netns`."""
    net = policy.network(spec.network)
    assert net is not None  # checked by the topology or check_new
    return VmState(name=spec.name, hypervisor=spec.hypervisor, network=spec.network,
                   ip=str(ipaddress.ip_address(spec.ip)), prefixlen=net.subnet.prefixlen,
                   gateway=str(net.gateway), mac=spec.mac, netns=netns,
                   port=nodes.vif_port(spec.name), plug=spec.plug, iface_id=spec.iface_id)
