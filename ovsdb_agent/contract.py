"""The hypervisor contract: the OVSDB keys through which hypervisors and ryu_dove talk.

Written down in docs/hypervisor-contract.md; every module that reads or writes these keys
imports them from here so that the contract has exactly one definition.
"""

from __future__ import annotations

import ipaddress
import re
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
# Without dove-ips the port learns its addresses from what the VM sends; the controller
# (and only it) keeps them here, "ip@unix-time" comma-separated, across its restarts.
LEARNED_IPS = "dove-learned-ips"
# What libvirt and os-vif write besides iface-id and attached-mac; a port with neither
# dove-network nor a policy port mapping matching its iface-id or vm-id is not ryu_dove's.
VM_ID = "vm-id"
IFACE_STATUS = "iface-status"

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


# What a hypervisor may call itself: it appears in port names, logs and the API.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a hypervisor's name, or None if it can."""
    if _NAME.fullmatch(name):
        return None
    return ("a hypervisor name is 1-63 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit")


def tep_problem(tep: str) -> str | None:
    """Why `tep` cannot be a tunnel endpoint, or None if it can: one canonical unicast
    address, so that equal TEPs are equal strings and a tunnel can reach it."""
    try:
        ip = ipaddress.ip_address(tep)
    except ValueError:
        return "a TEP is an IPv4 or IPv6 address"
    if str(ip) != tep:
        return f"a TEP is written canonically ({ip})"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return f"a TEP is not an IPv4-mapped IPv6 address (write {ip.ipv4_mapped})"
    if (ip.is_multicast or ip.is_unspecified or ip.is_loopback or ip.is_link_local
            or ip.is_reserved):
        return "a TEP is a unicast address a tunnel can reach"
    return None
