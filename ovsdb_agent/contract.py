"""The hypervisor contract: the OVSDB keys through which hypervisors and ryu_dove talk.

Written down in docs/hypervisor-contract.md; every module that reads or writes these keys
imports them from here so that the contract has exactly one definition.
"""

from __future__ import annotations

from collections.abc import Mapping

# Open_vSwitch.external_ids, written by dove-join on each hypervisor.
HYPERVISOR = "dove-hypervisor"  # the hypervisor's name in ryu_dove (defaults to the hostname)
TEP_IP = "dove-tep-ip"  # underlay address of this hypervisor's VXLAN tunnel endpoint
DATAPATH_TYPE = "dove-datapath-type"  # "system" on real hypervisors, "netdev" in the lab

# Interface.external_ids of a VM port, written by whatever plugs the VIF (libvirt, the lab).
IFACE_ID = "iface-id"  # the endpoint's unique id (Neutron/OVN use the same key)
ATTACHED_MAC = "attached-mac"  # the VM's MAC address on this port
NETWORK = "dove-network"  # "tenant/network", a network of the policy
IPS = "dove-ips"  # comma-separated addresses of the VM on that network

# external_ids on rows that ryu_dove created; it never touches rows without this mark.
OWNER = "dove-owner"
OWNER_VALUE = "ryu_dove"
REMOTE = "dove-remote"  # on tunnel ports: the hypervisor at the other end


def is_owned_tunnel(external_ids: Mapping[str, str]) -> bool:
    """A tunnel port ryu_dove made (the only kind it may change or remove): marked as ours
    and naming the hypervisor at its other end."""
    return external_ids.get(OWNER) == OWNER_VALUE and REMOTE in external_ids

INTEGRATION_BRIDGE = "br-int"
OFP_PORT = 6653
OVSDB_PORT = 6640
DEFAULT_DB = "unix:/var/run/openvswitch/db.sock"
