"""The synthetic world and what its hypervisors' OVSDB says.

T tenants, each M networks (one by default; VNIs unique, their subnets splitting one
documentation /24 alike in every tenant: tenants overlap) and R allow rules between them;
endpoint g belongs to tenant g % T, to network k % M of it (k = g // T), and sits on one of
the S hypervisors of that tenant. Every hypervisor is reported as the OVSDB manager reports
it: a full snapshot with its owned tunnel ports to every other hypervisor and its VM ports
(the contract's external_ids).
"""

from __future__ import annotations

import bisect
import ipaddress
import math
from collections.abc import Sequence
from dataclasses import dataclass

from ovsdb_agent import contract
from ovsdb_agent.reports import HypervisorReport, PortInfo

SUBNET = ipaddress.ip_network("198.51.100.0/24")  # every tenant's network (they may overlap)
TEP_BASE = int(ipaddress.ip_address("100.64.0.0"))
VNI_BASE = 10000
TUNNEL_OFPORT_BASE = 10000
# The rules a tenant gets, in order (`--rules R` takes the first R, round the networks).
RULE_KINDS = ("proto: tcp, port: 5432", "proto: udp, port: 8000-8080", "proto: icmp")


@dataclass(frozen=True)
class World:
    switches: int
    endpoints: int
    tenants: int
    spread: int  # hypervisors per tenant
    networks: int = 1  # per tenant
    rules: int = 0  # allow rules per tenant, between its networks

    def __post_init__(self) -> None:
        if self.rules and self.networks < 2:
            raise ValueError("rules connect networks: give at least 2 networks per tenant")

    def network_name(self, j: int) -> str:
        return "net" if j == 0 else f"net{j}"

    def subnet(self, j: int) -> ipaddress.IPv4Network:
        bits = math.ceil(math.log2(self.networks)) if self.networks > 1 else 0
        return list(SUBNET.subnets(prefixlen_diff=bits))[j]

    def tenant_name(self, t: int) -> str:
        return f"t{t:04d}"

    def placement(self, g: int) -> tuple[int, int, int]:
        """Endpoint number g -> (tenant, index in tenant, hypervisor index)."""
        t, k = g % self.tenants, g // self.tenants
        return t, k, (t * self.switches // self.tenants + k % self.spread) % self.switches

    def vni(self, t: int, j: int) -> int:
        return VNI_BASE + t * self.networks + j

    def policy_yaml(self) -> str:
        lines = ["tenants:"]
        for t in range(self.tenants):
            lines += [f"  {self.tenant_name(t)}:", "    networks:"]
            lines += [f"      {self.network_name(j)}: {{vni: {self.vni(t, j)}, "
                      f"subnet: {self.subnet(j)}}}" for j in range(self.networks)]
            if self.rules:
                lines.append("    policy:")
            for r in range(self.rules):  # j -> j+1 first, then j -> j+2, ...
                src = r % self.networks
                dst = (src + 1 + r // self.networks) % self.networks
                if dst == src:
                    raise ValueError(f"{self.rules} rules do not fit {self.networks} networks")
                lines.append(f"      - allow: {{from: {self.network_name(src)}, "
                             f"to: {self.network_name(dst)}, "
                             f"{RULE_KINDS[r % len(RULE_KINDS)]}}}")
        return "\n".join(lines) + "\n"


def hv_name(i: int) -> str:
    return f"hv{i:04d}"


def tep_ip(i: int) -> str:
    return str(ipaddress.ip_address(TEP_BASE + 1 + i))


def mac_of(t: int, k: int) -> str:
    return f"02:00:{t >> 8 & 255:02x}:{t & 255:02x}:{k >> 8 & 255:02x}:{k & 255:02x}"


@dataclass(frozen=True)
class Binding:
    """One endpoint binding: a VM port that appears on a hypervisor."""

    hv: int
    tenant: int
    network: int
    mac: str
    vm: str  # port name
    ids: tuple[tuple[str, str], ...]


def binding(world: World, g: int) -> Binding:
    t, k, hv = world.placement(g)
    j = k % world.networks
    subnet = world.subnet(j)
    n = 2 + k // world.networks  # after the gateway, the first host
    if n >= subnet.num_addresses - 1:
        raise ValueError(f"{subnet} is full: fewer endpoints per tenant, or fewer networks")
    mac = mac_of(t, k)
    ids = {contract.IFACE_ID: f"ep-{t}-{k}", contract.ATTACHED_MAC: mac,
           contract.NETWORK: f"{world.tenant_name(t)}/{world.network_name(j)}",
           contract.IPS: str(subnet.network_address + n)}
    return Binding(hv, t, j, mac, f"vif-{t:04d}-{k:05d}", tuple(sorted(ids.items())))


def tunnel_template(remote: int) -> PortInfo:
    """The tunnel port to `remote` as every hypervisor has it, but for its ofport."""
    from ryu_dove.tunnel_ids import tunnel_port_name

    ids = {contract.OWNER: contract.OWNER_VALUE, contract.REMOTE: hv_name(remote)}
    return PortInfo(tunnel_port_name(tep_ip(remote)), None, "vxlan", tuple(sorted(ids.items())),
                    (("key", "flow"), ("remote_ip", tep_ip(remote))), None)


def tunnel_ports(hv: int, templates: Sequence[PortInfo]) -> tuple[PortInfo, ...]:
    """hv's tunnel ports, sorted by name. OVS numbers ports in creation order, so the port to
    a given remote has a different ofport on each hypervisor (and the flows using it differ)."""
    n = len(templates)
    return tuple(PortInfo(t.name, TUNNEL_OFPORT_BASE + (j - hv) % n, t.type, t.external_ids,
                          t.options, None) for j, t in enumerate(templates) if j != hv)


class Hypervisors:
    """What every hypervisor's OVSDB says, kept as the agent keeps it: full snapshots."""

    def __init__(self, world: World) -> None:
        self.world = world
        n = world.switches
        templates = [tunnel_template(j) for j in range(n)]
        self._tunnels = [tunnel_ports(i, templates) for i in range(n)]  # "dv-" sorts first
        self._vms: list[list[PortInfo]] = [[] for _ in range(n)]
        self.hosting: dict[tuple[int, int], set[int]] = {}  # (tenant, network) -> hvs
        self.next_g = 0

    def plan(self, count: int) -> list[Binding]:
        """The next `count` bindings (not applied yet)."""
        planned = [binding(self.world, g) for g in range(self.next_g, self.next_g + count)]
        self.next_g += count
        return planned

    def expected_switches(self, planned: Sequence[Binding]) -> dict[str, int]:
        """Per MAC: how many switches get its unicast flow (those hosting its network) once
        all of `planned` is applied."""
        hosts = {key: set(h) for key, h in self.hosting.items()}
        for b in planned:
            hosts.setdefault((b.tenant, b.network), set()).add(b.hv)
        return {b.mac: len(hosts[(b.tenant, b.network)]) for b in planned}

    def apply(self, b: Binding) -> None:
        vms = self._vms[b.hv]
        port = PortInfo(b.vm, len(vms) + 1, "", b.ids, (), None)
        bisect.insort(vms, port, key=lambda p: p.name)
        self.hosting.setdefault((b.tenant, b.network), set()).add(b.hv)

    def report(self, i: int) -> HypervisorReport:
        return HypervisorReport(f"bench:{hv_name(i)}", hv_name(i), tep_ip(i), "netdev", i + 1,
                                (*self._tunnels[i], *self._vms[i]))
