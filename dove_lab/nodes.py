"""Creating and removing a lab's hypervisors and VMs with real namespaces, veths and OVS."""

from __future__ import annotations

import ipaddress
import uuid
from pathlib import Path

from dove_lab import shell
from dove_lab.naming import VIF_PREFIX, VM_MTU, Addressing, LabNames
from dove_lab.ovs_instance import OvsInstance, stop_pids
from dove_lab.state import HypervisorState, VmState
from ovsdb_agent import contract
from ovsdb_agent.join import JoinRequest, join
from ovsdb_agent.sockets import TlsFiles
from ovsdb_agent.vswitch import VSwitch

UNDERLAY_BRIDGE = "ul0"
UNDERLAY_IF = "eth1"  # a hypervisor's link to the underlay, attached to br-phy
MGMT_IF = "mgmt0"  # a hypervisor's link to the controller
PHY_BRIDGE = "br-phy"


def netns_add(name: str) -> None:
    shell.run(["ip", "netns", "add", name])
    shell.run(["ip", "-n", name, "link", "set", "lo", "up"])


def sysctl(netns: str, *settings: str) -> None:
    shell.run(["sysctl", "-q", "-w", *settings], netns=netns)


def create_underlay(names: LabNames) -> None:
    ns = names.underlay_netns
    netns_add(ns)
    shell.run(["ip", "-n", ns, "link", "add", UNDERLAY_BRIDGE, "type", "bridge"])
    shell.run(["ip", "-n", ns, "link", "set", UNDERLAY_BRIDGE, "up"])


def create_mgmt_bridge(names: LabNames, addr: Addressing) -> None:
    br = names.mgmt_bridge
    shell.run(["ip", "link", "add", br, "type", "bridge"])
    shell.run(["ip", "addr", "add", f"{addr.controller_ip}/{addr.mgmt_net.prefixlen}", "dev", br])
    shell.run(["ip", "link", "set", br, "up"])


def create_hypervisor(names: LabNames, addr: Addressing, hv: HypervisorState,
                      controller: bool, ssl: TlsFiles | None = None) -> OvsInstance:
    """A namespace with its own OVS, an underlay link on br-phy and a management link."""
    ns = hv.netns
    netns_add(ns)
    # The kernel also sees the underlay veth (an AF_PACKET port of br-phy): without arp_ignore
    # it would answer ARP for the TEP address with the veth's MAC (LAB-NOTES).
    sysctl(ns, "net.ipv4.conf.all.arp_ignore=1", "net.ipv6.conf.all.disable_ipv6=0")
    _link_underlay(names, hv)
    _link_mgmt(names, addr, hv)
    ovs = OvsInstance(ns, Path(hv.ovs_dir))
    ovs.start()
    ovs.vsctl("--may-exist", "add-br", PHY_BRIDGE, "--", "set", "bridge", PHY_BRIDGE,
              "datapath_type=netdev", f"other_config:hwaddr=\"{addr.tep_mac(hv.index)}\"",
              "--", "--may-exist", "add-port", PHY_BRIDGE, UNDERLAY_IF)
    shell.run(["ip", "-n", ns, "addr", "add", f"{hv.tep_ip}/24", "dev", PHY_BRIDGE])
    shell.run(["ip", "-n", ns, "link", "set", PHY_BRIDGE, "up"])
    req = JoinRequest(controller=addr.controller_ip, tep_ip=hv.tep_ip, hypervisor=hv.name,
                      datapath_type="netdev", ssl=ssl)
    with VSwitch(ovs.db) as vswitch:
        join(vswitch, req)
    if not controller:
        # Baseline: plain OVS, no controller; the lab programs the mesh (baseline.py).
        # OpenFlow 1.0 too: only it can mark ports no-flood (see baseline.py).
        br = contract.INTEGRATION_BRIDGE
        ovs.vsctl("del-controller", br, "--", "del-manager", "--", "set-fail-mode", br,
                  "standalone", "--", "set", "bridge", br, "protocols=OpenFlow10,OpenFlow13")
    return ovs


def _link_underlay(names: LabNames, hv: HypervisorState) -> None:
    ul = names.underlay_netns
    shell.run(["ip", "-n", ul, "link", "add", hv.name, "type", "veth",
               "peer", "name", UNDERLAY_IF, "netns", hv.netns])
    shell.run(["ip", "-n", ul, "link", "set", hv.name, "master", UNDERLAY_BRIDGE, "up"])
    shell.run(["ip", "-n", hv.netns, "link", "set", UNDERLAY_IF, "up"])


def _link_mgmt(names: LabNames, addr: Addressing, hv: HypervisorState) -> None:
    root_end = names.mgmt_veth(hv.index)
    shell.run(["ip", "link", "add", root_end, "type", "veth",
               "peer", "name", MGMT_IF, "netns", hv.netns])
    shell.run(["ip", "link", "set", root_end, "master", names.mgmt_bridge, "up"])
    shell.run(["ip", "-n", hv.netns, "addr", "add",
               f"{hv.mgmt_ip}/{addr.mgmt_net.prefixlen}", "dev", MGMT_IF])
    shell.run(["ip", "-n", hv.netns, "link", "set", MGMT_IF, "up"])


def warm_tunnel_neighbours(ovs: OvsInstance, peers: list[tuple[str, str]]) -> None:
    """Seed OVS's userspace tunnel ARP cache (ip, mac) so first tunnelled packets are not lost.

    The cache is only filled by snooping ARP replies through br-phy (LAB-NOTES); the lab knows
    every TEP's MAC, so it sets them instead of racing the first packets.
    """
    for ip, mac in peers:
        ovs.appctl("tnl/neigh/set", PHY_BRIDGE, ip, mac)


def delete_hypervisor(names: LabNames, hv: HypervisorState) -> None:
    OvsInstance(hv.netns, Path(hv.ovs_dir)).stop()
    delete_netns(hv.netns)
    shell.run(["ip", "-n", names.underlay_netns, "link", "del", hv.name], check=False)
    shell.run(["ip", "link", "del", names.mgmt_veth(hv.index)], check=False)


def create_vm(vm: VmState, hv_netns: str, vswitch: VSwitch | None = None,
              external_ids: dict[str, str] | None = None, *, plug: bool = True) -> None:
    """A VM namespace wired by veth to br-int, plugged the way VIF plugging would do it.

    With `plug=False` the namespace, the veth and eth0's set-up are made but the port is left
    out of br-int and OVSDB (no vswitch or external_ids needed): for callers that plug later
    themselves, e.g. a benchmark that times binding from the plug on.
    """
    if plug and (vswitch is None or external_ids is None):
        raise TypeError("create_vm: plugging needs a vswitch and external_ids")
    netns_add(vm.netns)
    at = ["-n", hv_netns] if hv_netns else []  # "": the namespace this process runs in
    shell.run(["ip", *at, "link", "add", vm.port, "type", "veth",
               "peer", "name", "eth0", "netns", vm.netns])
    shell.run(["ip", *at, "link", "set", vm.port, "mtu", str(VM_MTU), "up"])
    configure_vm_interface(vm)
    if plug:
        assert vswitch is not None and external_ids is not None  # checked above
        vswitch.plug_vif(contract.INTEGRATION_BRIDGE, vm.port, external_ids)


def vif_ids(vm: VmState) -> dict[str, str]:
    """The Interface's external_ids: the binding contract's, or only what libvirt writes
    (the network then comes from a policy port mapping, docs/policy.md)."""
    iface_id = vm.iface_id or vm.name
    if vm.plug == "libvirt":
        return {contract.IFACE_ID: iface_id, contract.ATTACHED_MAC: vm.mac,
                contract.IFACE_STATUS: "active",
                contract.VM_ID: str(uuid.uuid5(uuid.NAMESPACE_URL, f"dove-lab:{vm.netns}"))}
    ids = {contract.IFACE_ID: iface_id, contract.ATTACHED_MAC: vm.mac,
           contract.NETWORK: vm.network, contract.IPS: vm.ip}
    if vm.plug == "learn":  # the controller learns the address from what the VM sends
        del ids[contract.IPS]
    return ids


def vif_port(vm_name: str) -> str:
    return VIF_PREFIX + vm_name


def configure_vm_interface(vm: VmState) -> None:
    """Address, MTU, default route and offloads of a VM's eth0 (shared with the benchmarks)."""
    ns = vm.netns
    v6 = ipaddress.ip_address(vm.ip).version == 6
    if v6:  # no duplicate-address wait: the lab's addresses are unique by construction
        sysctl(ns, "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
    shell.run(["ip", "-n", ns, "link", "set", "eth0", "address", vm.mac, "mtu", str(VM_MTU)])
    shell.run(["ip", "-n", ns, "addr", "add", f"{vm.ip}/{vm.prefixlen}", "dev", "eth0"])
    shell.run(["ip", "-n", ns, "link", "set", "eth0", "up"])
    shell.run(["ip", "-n", ns, "-6" if v6 else "-4", "route", "add", "default",
               "via", vm.gateway])
    # The netdev datapath's AF_PACKET receive does not finish partial checksums (LAB-NOTES).
    shell.run(["ethtool", "-K", "eth0", "tx", "off"], netns=ns)


def delete_vm(vm: VmState, vswitch: VSwitch | None) -> None:
    """Unplug (when the hypervisor still runs) and remove a VM."""
    if vswitch is not None:
        vswitch.unplug(vm.port)
    delete_netns(vm.netns)


def netns_list() -> list[str]:
    out = shell.run(["ip", "netns", "list"])
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def delete_netns(name: str) -> None:
    """Stop whatever runs in a namespace of ours and wait until it has exited, then delete
    the namespace (its veths go with it)."""
    if name not in netns_list():
        return
    pids = [int(pid) for pid in shell.run(["ip", "netns", "pids", name], check=False).split()]
    stop_pids(pids, timeout=2.0)
    shell.run(["ip", "netns", "del", name], check=False)
