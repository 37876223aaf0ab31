"""Lab topology files: which hypervisors exist and which VMs sit where.

```yaml
hypervisors: [hv1, hv2, hv3]
vms:
  - {name: vm1, hypervisor: hv1, network: acme/web, ip: 198.51.100.10}
  - {name: vm2, hypervisor: hv2, network: acme/web, ip: 198.51.100.11, mac: "02:00:00:00:00:02"}
```
Checked against the policy: every problem is reported with its file:line:col.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from ryu_dove.policy import Policy
from ryu_dove.policy.yamlmarks import ConfigError, Problem, load_yaml, mark, unknown_key_problem

NODE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,10}$")
NODE_NAME_HELP = "1-11 characters: a lowercase letter, then lowercase letters, digits or '-'"
RESERVED_NAMES = frozenset({"underlay"})  # the lab's underlay namespace
MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
VM_KEYS = ("name", "hypervisor", "network", "ip", "mac", "libvirt", "iface-id", "learn")
TOP_KEYS = ("hypervisors", "vms")
MAX_HYPERVISORS = 29  # one /27 of the management range per lab (docs/lab.md)


@dataclass(frozen=True)
class VmSpec:
    name: str
    hypervisor: str
    network: str  # "tenant/net"
    ip: str
    mac: str
    plug: str = "dove"  # or "libvirt", "learn" (dove_lab.state.VmState.plug)
    iface_id: str = ""


@dataclass(frozen=True)
class Topology:
    hypervisors: tuple[str, ...]
    vms: tuple[VmSpec, ...] = field(default=())


def default_mac(network: str, vm: str) -> str:
    """A stable, locally administered unicast MAC for a VM that names none."""
    digest = hashlib.sha256(f"{network}/{vm}".encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in digest[:5])


def node_name_problem(name: str) -> str | None:
    """Why a name cannot name a lab node (hypervisor or VM), or None when it can."""
    if not NODE_NAME.match(name):
        return f"bad name {name!r}: {NODE_NAME_HELP}"
    if name in RESERVED_NAMES:
        return f"{name!r} is reserved by the lab"
    return None


def load_topology(path: str, policy: Policy) -> Topology:
    """Parse and check a topology file; raise ConfigError with every problem found."""
    data, problems = load_yaml(path)
    if problems:
        raise ConfigError(tuple(problems))
    checker = _Checker(path, policy)
    topo = checker.topology(data)
    if checker.problems:
        raise ConfigError(tuple(sorted(checker.problems)))
    return topo


class _Checker:
    def __init__(self, path: str, policy: Policy) -> None:
        self.path = path
        self.policy = policy
        self.problems: list[Problem] = []

    def problem(self, node: Any, key: Any, message: str) -> None:
        line, col = mark(node, key)
        self.problems.append(Problem(self.path, line, col, message))

    def topology(self, data: Any) -> Topology:
        if not isinstance(data, dict):
            self.problem(data, None, "a topology is a mapping with 'hypervisors' and 'vms'")
            return Topology(())
        for key in data:
            if key not in TOP_KEYS:
                self.problems.append(unknown_key_problem(self.path, data, key, TOP_KEYS))
        hvs = self.hypervisors(data)
        vms = self.vms(data, set(hvs))
        return Topology(tuple(hvs), tuple(vms))

    def hypervisors(self, data: dict[str, Any]) -> list[str]:
        raw = data.get("hypervisors")
        if not isinstance(raw, list) or not raw:
            self.problem(data, "hypervisors" if "hypervisors" in data else None,
                         "'hypervisors' must be a non-empty list of names")
            return []
        names: list[str] = []
        for i, name in enumerate(raw):
            why = node_name_problem(name) if isinstance(name, str) else f"bad name {name!r}"
            if why:
                self.problem(raw, i, why)
            elif name in names:
                self.problem(raw, i, f"hypervisor {name!r} is listed twice")
            else:
                names.append(name)
        if len(names) > MAX_HYPERVISORS:
            self.problem(data, "hypervisors", f"a lab holds at most {MAX_HYPERVISORS} hypervisors")
        return names

    def vms(self, data: dict[str, Any], hvs: set[str]) -> list[VmSpec]:
        raw = data.get("vms", [])
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.problem(data, "vms", "'vms' must be a list")
            return []
        specs: list[VmSpec] = []
        for i, item in enumerate(raw):
            spec = self.vm(raw, i, item, hvs)
            if spec is not None:
                self.check_unique(raw, i, spec, specs)
                specs.append(spec)
        return specs

    def vm(self, seq: Any, i: int, item: Any, hvs: set[str]) -> VmSpec | None:
        if not isinstance(item, dict):
            self.problem(seq, i, "a VM is a mapping {name, hypervisor, network, ip[, mac]}")
            return None
        before = len(self.problems)
        for key in item:
            if key not in VM_KEYS:
                self.problems.append(unknown_key_problem(self.path, item, key, VM_KEYS))
        for key in VM_KEYS[:4]:
            if not isinstance(item.get(key), str):
                self.problem(item, key if key in item else None, f"VM needs '{key}' (a string)")
        if len(self.problems) > before:
            return None
        name, hv, net_key, ip = (str(item[k]) for k in VM_KEYS[:4])
        why = node_name_problem(name)
        if why:
            self.problem(item, "name", why)
        elif name in hvs:
            self.problem(item, "name", f"{name!r} is already a hypervisor's name")
        if hv not in hvs:
            self.problem(item, "hypervisor", f"unknown hypervisor {hv!r}")
        network = self.policy.network(net_key)
        if network is None:
            self.problem(item, "network", f"unknown network {net_key!r} (tenant/network of the "
                                          "policy)")
        else:
            why = network.host_problem(ip)
            if why:
                self.problem(item, "ip", why)
        mac = str(item.get("mac", default_mac(net_key, name))).lower()
        if not MAC.match(mac) or int(mac[:2], 16) & 1:
            self.problem(item, "mac", f"not a unicast MAC address: {item.get('mac')!r}")
        libvirt, iface_id = item.get("libvirt", False), item.get("iface-id", "")
        learn = item.get("learn", False)
        if not isinstance(libvirt, bool):
            self.problem(item, "libvirt", "libvirt is true (plug as libvirt does) or false")
        if not isinstance(learn, bool):
            self.problem(item, "learn", "learn is true (no dove-ips: the address is learned) "
                         "or false")
        elif learn and libvirt is True:
            self.problem(item, "learn", "a libvirt port learns its addresses already")
        if not isinstance(iface_id, str):
            self.problem(item, "iface-id", "iface-id is a string")
        if len(self.problems) > before:
            return None
        return VmSpec(name, hv, net_key, str(ipaddress.ip_address(ip)), mac,
                      "libvirt" if libvirt else "learn" if learn else "dove", iface_id)

    def check_unique(self, seq: Any, i: int, spec: VmSpec, seen: list[VmSpec]) -> None:
        for other in seen:
            if other.name == spec.name:
                self.problem(seq[i], "name", f"VM name {spec.name!r} is used twice")
            if other.network == spec.network and other.ip == spec.ip:
                self.problem(seq[i], "ip", f"{spec.ip} is already {other.name}'s address on "
                                           f"{spec.network}")
            if other.network == spec.network and other.mac == spec.mac:
                self.problem(seq[i], "mac", f"{spec.mac} is already {other.name}'s MAC on "
                                            f"{spec.network}")
