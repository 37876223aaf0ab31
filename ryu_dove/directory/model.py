"""What the directory holds: hypervisors and the endpoints bound on them (plain values)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class Hypervisor:
    name: str
    tep_ip: str
    dpid: int | None = None  # br-int's datapath id, from OVSDB
    tunnels: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    # remote hypervisor name -> ofport of the tunnel port to it on this hypervisor's br-int

    def __hash__(self) -> int:
        return hash((self.name, self.tep_ip, self.dpid, tuple(sorted(self.tunnels.items()))))


@dataclass(frozen=True)
class Endpoint:
    network: str  # "tenant/network"
    mac: str
    ips: tuple[str, ...]
    hypervisor: str
    port: str  # interface name on br-int
    ofport: int
    iface_id: str
