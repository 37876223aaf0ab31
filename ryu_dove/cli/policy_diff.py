"""What a policy change would do, worked out before it is applied (`dovectl diff OLD NEW`).

Paths: the (tenant, from, to, proto, ports) that a rule opens or closes, and networks that
come, go or change. Flows: for each hypervisor of a directory (a running controller's, read
from its API), the flows its br-int would gain and lose, computed by the controller's own
compiler from both policies; without a directory, the per-tenant routing flows (the same on
every hypervisor that routes for the tenant).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ryu_dove.directory import Endpoint, Hypervisor, MemoryDirectory
from ryu_dove.pipeline.compiler import compile_switch
from ryu_dove.pipeline.parts import routing
from ryu_dove.policy import Policy, Rule


@dataclass(frozen=True, order=True)
class Path:
    tenant: str
    src: str
    dst: str
    proto: str
    ports: str  # "5432", "8000-8080", or "" for every port

    def __str__(self) -> str:
        port = f" port {self.ports}" if self.ports else ""
        return f"{self.tenant}: {self.src} -> {self.dst} {self.proto}{port}"


@dataclass(frozen=True)
class FlowDelta:
    where: str  # a hypervisor, or "tenant T" (policy alone)
    added: int
    deleted: int


def paths(policy: Policy) -> set[Path]:
    return {_path(rule) for t in policy.tenants.values() for rule in t.rules}


def _path(rule: Rule) -> Path:
    return Path(rule.tenant, rule.src, rule.dst, rule.proto, rule.port_text)


def network_changes(old: Policy, new: Policy) -> list[str]:
    """Networks added, removed or changed (VNI, subnet, gateway), as lines."""
    before = {n.key: n for n in old.networks()}
    after = {n.key: n for n in new.networks()}
    lines = [f"network {k} added (VNI {after[k].vni}, {after[k].subnet})"
             for k in sorted(after.keys() - before.keys())]
    lines += [f"network {k} removed" for k in sorted(before.keys() - after.keys())]
    lines += [f"network {k} changed: VNI {before[k].vni} -> {after[k].vni}, "
              f"{before[k].subnet} -> {after[k].subnet}, gateway {before[k].gateway} -> "
              f"{after[k].gateway}"
              for k in sorted(before.keys() & after.keys()) if before[k] != after[k]]
    return lines


def tenant_flow_deltas(old: Policy, new: Policy) -> list[FlowDelta]:
    """Routing flows of each tenant (the same on every hypervisor routing for it)."""
    deltas = []
    for tenant in sorted(set(old.tenants) | set(new.tenants)):
        before = _tenant_flows(old, tenant)
        after = _tenant_flows(new, tenant)
        if before != after:
            deltas.append(FlowDelta(f"tenant {tenant}", len(after - before),
                                    len(before - after)))
    return deltas


def _tenant_flows(policy: Policy, tenant: str) -> set[int]:
    if tenant not in policy.tenants:
        return set()
    return set(routing.tenant_part(policy, tenant))


def hypervisor_flow_deltas(old: Policy, new: Policy, directory: MemoryDirectory,
                           ) -> list[FlowDelta]:
    """Every hypervisor's br-int, compiled under both policies."""
    deltas = []
    for hv in directory.hypervisors():
        before = {f.cookie for f in compile_switch(old, directory, hv.name)}
        after = {f.cookie for f in compile_switch(new, directory, hv.name)}
        deltas.append(FlowDelta(hv.name, len(after - before), len(before - after)))
    return deltas


def directory_from_api(hypervisors: Iterable[Mapping[str, Any]],
                       tunnels: Iterable[Mapping[str, Any]],
                       endpoints: Iterable[Mapping[str, Any]]) -> MemoryDirectory:
    """The controller's directory rebuilt from its API's lists (docs/api.md)."""
    ports: dict[str, dict[str, int]] = {}
    for t in tunnels:
        if isinstance(t.get("ofport"), int) and t["ofport"] > 0:
            ports.setdefault(str(t["hypervisor"]), {})[str(t["remote"])] = t["ofport"]
    directory = MemoryDirectory()
    for h in hypervisors:
        name = str(h["name"])
        dpid = int(h["dpid"], 16) if h.get("dpid") else None
        directory.put_hypervisor(Hypervisor(name, str(h["tep_ip"]), dpid,
                                            MappingProxyType(ports.get(name, {}))))
    by_hv: dict[str, list[Endpoint]] = {}
    for e in endpoints:
        if isinstance(e.get("ofport"), int):
            by_hv.setdefault(str(e["hypervisor"]), []).append(Endpoint(
                str(e["network"]), str(e["mac"]), tuple(str(ip) for ip in e["ips"]),
                str(e["hypervisor"]), str(e["port"]), e["ofport"], str(e["iface_id"]),
                standby=e.get("standby") is True))
    for name, eps in by_hv.items():
        if directory.hypervisor(name) is not None:
            directory.replace_endpoints(name, eps)
    return directory


def report(old: Policy, new: Policy, deltas: list[FlowDelta]) -> list[str]:
    """The lines `dovectl diff` prints."""
    before, after = paths(old), paths(new)
    lines = [f"opens  {p}" for p in sorted(after - before)]
    lines += [f"closes {p}" for p in sorted(before - after)]
    lines += network_changes(old, new)
    if not lines:
        lines.append("no path opens or closes and no network changes")
    lines += [f"flows  {d.where}: +{d.added} -{d.deleted}" for d in deltas]
    return lines
